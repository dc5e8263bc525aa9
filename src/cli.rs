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
    pub(crate) labs: Option<PathBuf>,
    /// Where started labs live (default: ~/vlab)
    #[arg(long, global = true, env = "VLAB_WORKSPACE", value_name = "DIR")]
    pub(crate) workspace: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// No colours (also honoured: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    pub(crate) no_color: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the labs, their tier and whether you started them
    List,
    /// Copy a lab's starter files into your workspace
    Start {
        /// Lab id, number or slug (e.g. 01-bare-metal, 1, bare-metal)
        lab: String,
    },
    /// Run a lab's checks on your workspace (exit status 0 when every step this machine can run passes)
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
    /// Progress across all labs, and your chapter quiz scores
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
    /// Serve the book on 127.0.0.1 with live reload and your live lab status (Ctrl-C to stop)
    Serve {
        /// Port to listen on (0 picks a free one)
        #[arg(long, short, default_value_t = 3000)]
        port: u16,
    },
    /// Build the book, or bring its generated lab pages up to date
    Book {
        #[command(subcommand)]
        action: BookAction,
    },
    /// Pack your lab files into a bundle to hand in (only the files the labs ask for)
    Submit {
        /// Labs to include (default: every lab you started)
        #[arg(value_name = "LAB")]
        names: Vec<String>,
        /// The bundle to write
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// Your name or student id (default: $USER)
        #[arg(long)]
        student: Option<String>,
    },
    /// Instructor: re-run the canonical checks on submissions, sandboxed, and export grades
    #[command(after_help = "Writes DIR/results/<student>.json (one per bundle, atomically; a rerun resumes), \
                            DIR/gradebook.csv, DIR/junit.xml, DIR/gradescope/<student>/results.json and \
                            DIR/feedback/<student>.md.\n\n\
                            Each submission runs in its own bubblewrap sandbox: its own root with only \
                            the labs' starters, no network but loopback, a pids+memory cgroup, file-size \
                            limits, an unprivileged uid unless its lab.toml [grading] asks for more, and \
                            (as root) a private size-limited filesystem. docs/grading.md says what is and \
                            is not guaranteed.")]
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
    /// Your measurements of every tier side by side, as a table and an SVG chart
    Compare {
        /// Where to write the chart (default: <workspace>/compare.svg)
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Which tier fits a job? Answers the field guide's questions with your numbers
    #[command(after_help = "Questions not given as flags are asked when run on a terminal;\n\
                            otherwise they count as \"no strong need\". --hardware-virt defaults to\n\
                            what `vlab doctor` measures.")]
    Advise {
        /// Must it run a different kernel or OS than the host?
        #[arg(long, value_name = "yes|no")]
        other_os: Option<YesNo>,
        /// Must it run code for another CPU architecture?
        #[arg(long, value_name = "yes|no")]
        other_arch: Option<YesNo>,
        /// Must tenants be isolated by separate kernels?
        #[arg(long, value_name = "yes|no")]
        strong_isolation: Option<YesNo>,
        /// Must running instances move between hosts (live migration)?
        #[arg(long, value_name = "yes|no")]
        live_migration: Option<YesNo>,
        /// Must each workload own fixed CPUs and memory?
        #[arg(long, value_name = "yes|no")]
        dedicated_resources: Option<YesNo>,
        /// Is fast hardware virtualization available (default: measured)
        #[arg(long, value_name = "yes|no")]
        hardware_virt: Option<YesNo>,
    },
    /// Internal: grade one submission inside the sandbox (run by `vlab grade`)
    #[command(name = "__grade-one", hide = true)]
    GradeOne { spec: PathBuf },
    /// Guest assets and boots: fetch the guest kernel, build the initramfs, boot the probe guest
    Guest {
        #[command(subcommand)]
        action: GuestAction,
    },
    /// Drive /dev/kvm directly with vlab's tiny VMM
    Kvm {
        #[command(subcommand)]
        action: KvmAction,
    },
    /// Software-emulation helpers: the runner's own view of QEMU's binary translator
    Emu {
        #[command(subcommand)]
        action: EmuAction,
    },
    /// Partitioning helper: run COMMAND, time the workload in slice a against its neighbours
    /// from the scheduler's own counts, and write them to $VLAB_RESULTS as observed_*
    Partition {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// User-Mode-Linux helpers: the runner's own count of the host system calls behind a guest's
    Uml {
        #[command(subcommand)]
        action: UmlAction,
    },
    /// Xen helpers: boot Xen with a dom0 that runs Xen's toolstack
    Xen {
        #[command(subcommand)]
        action: XenAction,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum XenAction {
    /// Boot Xen under QEMU (TCG) with Debian's generic kernel as dom0; dom0 starts a PV domU
    /// from CONFIG with `xl create` and prints what the domU saw (lab 08's domU step)
    Domu {
        /// The domU's xl config (xl.cfg(5)); inside dom0 it is /etc/xen/domu.cfg
        config: PathBuf,
        /// A shell script dom0 runs while the domU is up and connected; its
        /// key=value lines go into the report as answer.* (lab 08, steps 4 and 5)
        #[arg(long, value_name = "SCRIPT")]
        dom0_script: Option<PathBuf>,
        /// Stop QEMU after this many seconds
        #[arg(long, default_value_t = 240)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BookAction {
    /// Regenerate the lab pages and build the HTML book (default: book/book, like `mdbook build`)
    Build {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Regenerate the lab pages, SUMMARY.md's lab entries and the chapters' lab lists from labs/
    Sync {
        /// Change nothing; exit 1 if any generated page is out of date
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GuestAction {
    /// Fetch (once) the guest kernel and build (once) the initramfs; print where they are
    Assets {
        /// Also fetch the aarch64 busybox for the software-emulation lab
        #[arg(long)]
        arm64: bool,
    },
    /// Boot the probe guest and print its report
    Boot {
        /// Accelerator: tcg (software emulation) or kvm
        #[arg(long, default_value = "tcg", value_parser = ["tcg", "kvm"])]
        accel: String,
        /// Measurements the probe makes inside the guest (e.g. cpu)
        #[arg(long, value_delimiter = ',')]
        measure: Vec<String>,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Also write the guest's whole console to FILE
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KvmAction {
    /// Run real-mode guest code (hex bytes in FILE) on /dev/kvm; the guest must copy the
    /// 8 bytes at 0x1800 to port 0x10, then hlt
    Run {
        /// Guest code as hex bytes; `#` starts a comment
        file: PathBuf,
        /// The 16 hex digits placed at 0x1800 (default: $VLAB_NONCE, or a fresh one)
        #[arg(long)]
        nonce: Option<String>,
    },
    /// Run COMMAND (which writes present=, module=, cpu_virt=, fast= to $VLAB_RESULTS), then
    /// write what doctor measures about this machine's KVM as observed_* lines
    Verdict {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run your VMM (COMMAND real|long GUEST) on a guest made for this check, watch it from
    /// /proc, and write what it did to $VLAB_RESULTS as observed_* lines
    Watch {
        /// The guest: real (port I/O), mmio, paged (long mode) or cost (exit round trips)
        #[arg(long, value_enum)]
        mode: crate::kvm::watch::Mode,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EmuAction {
    /// Run COMMAND with $VLAB_SEQ_N set, then count translation blocks for the same
    /// workload under qemu-x86_64 and write the counts to $VLAB_RESULTS as observed_*
    Translate {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run COMMAND and watch its processes for qemu-user; write what ran to $VLAB_RESULTS as observed_*
    Cross {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UmlAction {
    /// Run COMMAND with $VLAB_COUNT set, watch it boot UML, then count the UML kernel's host
    /// system calls per guest system call in MODE itself and write them to $VLAB_RESULTS as observed_*
    Count {
        #[arg(value_parser = ["ptrace", "seccomp"])]
        mode: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum YesNo {
    Yes,
    No,
}

impl YesNo {
    pub(crate) fn get(self) -> bool {
        self == YesNo::Yes
    }
}
