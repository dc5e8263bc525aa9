//! Run to completion (`kind = "run"`): the command runs to its end under the
//! one process runner; the runner records how it ended and what it used
//! (CPU from its cgroup or rusage, time runnable, bytes written to disk).

use std::time::Duration;

use super::observer::{CheckError, Ctx, Observer, Ran, Watch};
use crate::catalog::{Check, InvalidCheck};
use crate::evidence::Facts;
use crate::proc::{Cmd, Output};

pub(crate) struct RunToCompletion;

impl Observer for RunToCompletion {
    fn kind(&self) -> Option<&'static str> {
        Some("run")
    }

    fn validate(&self, check: &Check) -> Result<(), InvalidCheck> {
        match check.probe_dir {
            Some(_) => Err(InvalidCheck("`probe_dir` only applies to kind = \"observe\"".into())),
            None => Ok(()),
        }
    }

    fn arm(&self, _ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        Ok(Some(Box::new(RunWatch)))
    }
}

struct RunWatch;

impl Watch for RunWatch {
    fn run(&mut self, cmd: &Cmd, ctx: &Ctx) -> Result<Ran, CheckError> {
        let out = cmd.run()?;
        let ran = Ran::new(usage_facts(&out), out.stdout.clone(), out.stderr.clone());
        let shown = ctx.shown;
        if out.timed_out {
            let timeout = ctx.check.timeout_secs;
            let msg = format!("`{shown}` did not finish within {timeout}s and was killed (with everything it started)");
            return Ok(ran.fail_showing_output(msg));
        }
        if let Some(want) = ctx.check.expect.exit.filter(|w| out.code != Some(*w)) {
            let msg = format!("`{shown}` {} (expected status {want})", out.describe_end());
            return Ok(ran.fail_showing_output(msg));
        }
        Ok(ran)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// How the command ended and what it used: `exit`, `elapsed_ms`, `cpu.*`, `io.*`.
fn usage_facts(out: &Output) -> Facts {
    let mut facts = Facts::new();
    facts.insert("exit".into(), out.code.map(|c| c.to_string()).unwrap_or_else(|| "killed".into()));
    facts.insert("elapsed_ms".into(), ms(out.elapsed));
    facts.insert("cpu.user_ms".into(), ms(out.usage.user));
    facts.insert("cpu.sys_ms".into(), ms(out.usage.sys));
    facts.insert("cpu.total_ms".into(), ms(out.usage.user + out.usage.sys));
    // How long the processes were runnable: CPU time plus the time they
    // waited for a CPU (PSI). A loop that sleeps is not runnable; where
    // the kernel keeps no PSI, the wall time is the (weaker) bound.
    let runnable = match out.usage.cpu_wait {
        Some(wait) => out.usage.user + out.usage.sys + wait,
        None => out.elapsed,
    };
    facts.insert("cpu.runnable_ms".into(), ms(runnable));
    facts.insert("io.write_bytes".into(), out.usage.block_write_bytes.to_string());
    let counted_by = if out.usage.block_writes_flushed { "blkio" } else { "rusage" };
    facts.insert("io.write_counted_by".into(), counted_by.into());
    facts
}
