//! Command-line types (clap derive) only; behaviour lives in `app`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vlab",
    version,
    about = "Build every tier of virtualization on your own machine, and check that you did",
    long_about = "vlab runs the labs of the book \"vlab: Virtualization, tier by tier\".\n\
                  Start a lab, edit its files, and `vlab check` runs real tools (unshare, runc,\n\
                  QEMU, UML, /dev/kvm) to observe what your work really does.",
    after_help = "Typical session:\n  vlab doctor            what this machine can do\n  vlab start bare-metal  copy the starter into ~/vlab/01-bare-metal\n  vlab check bare-metal  run the checks\n  vlab hint bare-metal   one more hint for the first unfinished step"
)]
pub struct Cli {
    /// Directory holding the labs (default: ./labs, or the checkout vlab was built from)
    #[arg(long, global = true, env = "VLAB_LABS", value_name = "DIR")]
    pub labs: Option<PathBuf>,
    /// Where started labs live (default: ~/vlab)
    #[arg(long, global = true, env = "VLAB_WORKSPACE", value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// No colours (also honoured: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    pub no_color: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the labs, their tier and whether you started them
    List,
    /// Copy a lab's starter files into your workspace
    Start {
        /// Lab id, number or slug (e.g. 01-bare-metal, 1, bare-metal)
        lab: String,
    },
    /// Run a lab's checks on your workspace (exit status 0 only if every step passes)
    Check {
        /// Lab to check (default: the lab whose workspace you are in)
        lab: Option<String>,
        /// Only this step
        #[arg(long, short)]
        step: Option<String>,
    },
    /// Re-check a lab every time you save one of its files (Ctrl-C to stop)
    Watch {
        lab: String,
        #[arg(long, short)]
        step: Option<String>,
        /// Stop after this many check runs (for scripts)
        #[arg(long, value_name = "N")]
        max_runs: Option<u32>,
    },
    /// Show the next hint for a step (default: the first unfinished step)
    Hint { lab: String, step: Option<String> },
    /// Progress across all labs
    Status,
    /// Start a lab over from its starter (your old files are moved aside, not deleted)
    Reset { lab: String },
    /// Measure what this machine can do: tools, namespaces, cgroups, KVM speed
    Doctor,
    /// Install missing host packages from the distribution (as root)
    Setup {
        /// Only print what would be installed
        #[arg(long)]
        dry_run: bool,
    },
    /// Pack your lab files into a bundle to hand in (only the files the labs ask for)
    Submit {
        /// Labs to include (default: every lab you started)
        labs: Vec<String>,
        /// The bundle to write
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// Your name or student id (default: $USER)
        #[arg(long)]
        student: Option<String>,
    },
    /// Instructor: re-run the canonical checks on submissions, sandboxed, and export grades
    #[command(after_help = "Writes DIR/results/<student>.json (one per bundle, atomically; a rerun resumes),
                            DIR/gradebook.csv, DIR/junit.xml, DIR/gradescope/<student>/results.json and
                            DIR/feedback/<student>.md. Each submission runs in its own namespaces with
                            no network but loopback, a pids+memory cgroup, file-size limits and (as root)
                            a private size-limited filesystem.")]
    Grade {
        /// Submission bundles, or directories of them
        #[arg(required_unless_present = "gradescope")]
        inputs: Vec<PathBuf>,
        /// Where results and exports go
        #[arg(long, value_name = "DIR", required_unless_present = "gradescope")]
        out: Option<PathBuf>,
        /// Submissions graded at once (default: number of cores)
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Only these labs (comma-separated ids)
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Course policy: deadline, late penalty, hidden steps (TOML)
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Run as a Gradescope autograder: grade the bundle in <root>/submission, write <root>/results/results.json
        #[arg(long)]
        gradescope: bool,
        /// The autograder root for --gradescope
        #[arg(long, value_name = "DIR", default_value = "/autograder")]
        autograder_root: PathBuf,
    },
    /// Internal: grade one submission inside the sandbox (run by `vlab grade`)
    #[command(name = "__grade-one", hide = true)]
    GradeOne { spec: PathBuf },
}
