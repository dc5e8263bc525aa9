//! A tiny VMM on /dev/kvm: one vCPU in real mode, a page of guest code, port
//! I/O exits. `vlab doctor` times it to tell hardware-speed KVM from an
//! emulated or nested one; the KVM lab drives it to show the run loop
//! (`vlab kvm`, in `command`).

pub(crate) mod command;

pub(crate) mod watch;

use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

/// Guest physical address where the code is loaded and started.
pub(crate) const LOAD_ADDR: u64 = 0x1000;
const MEM_SIZE: usize = 0x10000;

/// At or above this many guest instructions per second KVM runs at hardware speed.
pub(crate) const FAST_RATE: f64 = 100e6;

#[derive(Debug, thiserror::Error)]
pub(crate) enum KvmError {
    #[error("/dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    #[error("KVM refused to {what}: {source}")]
    Setup { what: &'static str, source: kvm_ioctls::Error },
    #[error("the guest stopped unexpectedly: {0}")]
    Exit(String),
}

/// A VM with one vCPU executing `code` from `LOAD_ADDR` in real mode.
pub(crate) struct TinyVm {
    _vm: VmFd,
    vcpu: VcpuFd,
    mem: *mut u8,
}

impl Drop for TinyVm {
    fn drop(&mut self) {
        // SAFETY: `mem` is the MEM_SIZE mapping made in `new`, unmapped only
        // here; the vCPU and VM fds that use it are dropped with `self`.
        if unsafe { libc::munmap(self.mem.cast(), MEM_SIZE) } != 0 {
            eprintln!("vlab: cannot unmap the tiny VM's memory: {}", std::io::Error::last_os_error());
        }
    }
}

/// What one exit to the VMM was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    Out { port: u16, data: Vec<u8> },
    Halt,
}

impl TinyVm {
    pub(crate) fn new(code: &[u8]) -> Result<Self, KvmError> {
        assert!(code.len() < MEM_SIZE - LOAD_ADDR as usize, "guest code too large");
        let kvm = Kvm::new().map_err(KvmError::Open)?;
        let vm = kvm.create_vm().map_err(|source| KvmError::Setup { what: "create a VM", source })?;
        // SAFETY: an anonymous private mapping at an address the kernel picks
        // touches no existing memory; MAP_FAILED is checked below.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(KvmError::Exit("cannot map guest memory".into()));
        }
        let mem = mem.cast::<u8>();
        // SAFETY: `mem` is a fresh MEM_SIZE mapping no one else sees, and the
        // assert above keeps LOAD_ADDR + code.len() inside it.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mem.add(LOAD_ADDR as usize), code.len()) };
        let region = kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: MEM_SIZE as u64,
            userspace_addr: mem as u64,
            flags: 0,
        };
        let this_mem = mem;
        let fail = |what, source| {
            // SAFETY: the mapping made above, unmapped once: `new` returns
            // right after, and no TinyVm (whose Drop would unmap it) exists.
            if unsafe { libc::munmap(this_mem.cast(), MEM_SIZE) } != 0 {
                eprintln!("vlab: cannot unmap the tiny VM's memory: {}", std::io::Error::last_os_error());
            }
            KvmError::Setup { what, source }
        };
        // SAFETY: the region is the MEM_SIZE mapping above, which outlives
        // every KVM_RUN: it is unmapped only by `fail` (no vCPU has run) or in
        // TinyVm's Drop (no vCPU can run any more).
        unsafe { vm.set_user_memory_region(region) }.map_err(|e| fail("map guest memory", e))?;
        let vcpu = vm.create_vcpu(0).map_err(|e| fail("create a vCPU", e))?;
        let mut sregs = vcpu.get_sregs().map_err(|e| fail("read segment registers", e))?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs).map_err(|e| fail("set segment registers", e))?;
        let mut regs = vcpu.get_regs().map_err(|e| fail("read registers", e))?;
        regs.rip = LOAD_ADDR;
        regs.rflags = 2;
        vcpu.set_regs(&regs).map_err(|e| fail("set registers", e))?;
        Ok(TinyVm { _vm: vm, vcpu, mem })
    }

    /// Runs until the next exit the VMM must handle.
    pub(crate) fn run(&mut self) -> Result<Exit, KvmError> {
        // A signal (say SIGCHLD from another thread's child) interrupts KVM_RUN; resume.
        loop {
            match self.vcpu.run() {
                Err(e) if e.errno() == libc::EINTR => continue,
                other => return Self::exit(other),
            }
        }
    }

    fn exit(result: Result<VcpuExit<'_>, kvm_ioctls::Error>) -> Result<Exit, KvmError> {
        match result {
            Ok(VcpuExit::IoOut(port, data)) => Ok(Exit::Out { port, data: data.to_vec() }),
            Ok(VcpuExit::Hlt) => Ok(Exit::Halt),
            Ok(other) => Err(KvmError::Exit(format!("{other:?}"))),
            Err(e) => Err(KvmError::Exit(e.to_string())),
        }
    }
}

/// Guest code: `mov ecx, n; l: dec ecx; jnz l; out 0x10, al; jmp start`.
/// One round executes 2n + 3 instructions and exits once.
pub(crate) fn busy_loop_code(n: u32) -> Vec<u8> {
    let mut code = vec![0x66, 0xB9];
    code.extend_from_slice(&n.to_le_bytes());
    code.extend_from_slice(&[0x66, 0x49, 0x75, 0xFC, 0xE6, 0x10, 0xEB, 0xF2]);
    code
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct Speed {
    pub(crate) instructions: u64,
    pub(crate) seconds: f64,
    /// Guest instructions per second.
    pub(crate) rate: f64,
    pub(crate) exits: u64,
}

impl Speed {
    pub(crate) fn fast(&self) -> bool {
        self.rate >= FAST_RATE
    }
}

/// Times the busy loop for about `budget` and reports guest instructions per second.
pub(crate) fn measure(budget: Duration) -> Result<Speed, KvmError> {
    const N: u32 = 20_000;
    let mut vm = TinyVm::new(&busy_loop_code(N))?;
    let per_round = 2 * N as u64 + 3;
    // The first round pays for faulting in guest memory; it is not timed.
    expect_out(vm.run()?)?;
    let started = Instant::now();
    let mut rounds = 0u64;
    while rounds < 1000 && (rounds == 0 || started.elapsed() < budget) {
        expect_out(vm.run()?)?;
        rounds += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let instructions = rounds * per_round;
    Ok(Speed { instructions, seconds, rate: instructions as f64 / seconds, exits: rounds })
}

fn expect_out(exit: Exit) -> Result<(), KvmError> {
    match exit {
        Exit::Out { port: 0x10, .. } => Ok(()),
        other => Err(KvmError::Exit(format!("expected an OUT to port 0x10, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_jumps_back_to_start() {
        let code = busy_loop_code(5);
        assert_eq!(code.len(), 14);
        // jmp rel8 at offset 12: target = 14 + (-14) = 0.
        assert_eq!(code[12..], [0xEB, 0xF2]);
        // jnz rel8 at offset 8: target = 10 - 4 = 6 (the dec).
        assert_eq!(code[6..8], [0x66, 0x49]);
    }

    #[test]
    fn runs_a_real_guest_when_kvm_is_here() {
        if !std::path::Path::new("/dev/kvm").exists() {
            crate::testing::skip("/dev/kvm is not present on this machine");
            return;
        }
        let speed = measure(Duration::from_millis(20)).expect("the tiny guest runs");
        assert!(speed.exits >= 1 && speed.rate > 0.0, "{speed:?}");
    }

    #[test]
    fn guest_port_output_reaches_the_vmm() {
        if !std::path::Path::new("/dev/kvm").exists() {
            crate::testing::skip("/dev/kvm is not present on this machine");
            return;
        }
        // mov al, 0x42; out 0x20, al; hlt
        let mut vm = TinyVm::new(&[0xB0, 0x42, 0xE6, 0x20, 0xF4]).unwrap();
        assert_eq!(vm.run().unwrap(), Exit::Out { port: 0x20, data: vec![0x42] });
        assert_eq!(vm.run().unwrap(), Exit::Halt);
    }
}
