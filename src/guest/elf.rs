//! Just enough ELF reading for the guest assets: the machine a binary is for,
//! and a kernel module's `.modinfo` strings (its `depends=` list).

/// `e_machine` values vlab names.
pub const EM_X86_64: u16 = 62;
pub(crate) const EM_AARCH64: u16 = 183;

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The `e_machine` of a little-endian ELF file, or None if it is not one.
pub fn machine(bytes: &[u8]) -> Option<u16> {
    (bytes.get(..4)? == b"\x7fELF" && bytes.get(5) == Some(&1)).then(|| u16_at(bytes, 0x12))?
}

pub(crate) fn machine_name(machine: u16) -> String {
    match machine {
        EM_X86_64 => "x86_64".into(),
        EM_AARCH64 => "aarch64".into(),
        3 => "i386".into(),
        40 => "arm".into(),
        243 => "riscv".into(),
        other => format!("elf-machine-{other}"),
    }
}

/// The bytes of the named section of a 64-bit little-endian ELF file.
fn section<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    if bytes.get(4) != Some(&2) {
        return None;
    }
    let shoff = u64_at(bytes, 0x28)? as usize;
    let shentsize = u16_at(bytes, 0x3A)? as usize;
    let shnum = u16_at(bytes, 0x3C)? as usize;
    let shstrndx = u16_at(bytes, 0x3E)? as usize;
    let header = |i: usize| {
        let h = shoff + i * shentsize;
        Some((u32_at(bytes, h)? as usize, u64_at(bytes, h + 0x18)? as usize, u64_at(bytes, h + 0x20)? as usize))
    };
    let (_, names_at, names_len) = header(shstrndx)?;
    let names = bytes.get(names_at..names_at + names_len)?;
    (0..shnum).find_map(|i| {
        let (n, off, len) = header(i)?;
        let end = names.get(n..)?.iter().position(|c| *c == 0)?;
        (&names[n..n + end] == name.as_bytes()).then(|| bytes.get(off..off + len))?
    })
}

/// XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point of a kernel built with CONFIG_PVH.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The descriptor of the "Xen" ELF note of type `kind` in a 64-bit
/// little-endian kernel ELF: what Xen and QEMU read to boot it.
fn xen_note(bytes: &[u8], kind: u32) -> Option<&[u8]> {
    if bytes.get(4) != Some(&2) || machine(bytes).is_none() {
        return None;
    }
    let phoff = u64_at(bytes, 0x20)? as usize;
    let phentsize = u16_at(bytes, 0x36)? as usize;
    let phnum = u16_at(bytes, 0x38)? as usize;
    let align4 = |n: usize| (n + 3) & !3;
    (0..phnum).find_map(|i| {
        let h = phoff + i * phentsize;
        if u32_at(bytes, h)? != 4 {
            return None; // not PT_NOTE
        }
        let (off, len) = (u64_at(bytes, h + 8)? as usize, u64_at(bytes, h + 32)? as usize);
        let notes = bytes.get(off..off.checked_add(len)?)?;
        let mut at = 0;
        while at + 12 <= notes.len() {
            let (namesz, descsz, t) =
                (u32_at(notes, at)? as usize, u32_at(notes, at + 4)? as usize, u32_at(notes, at + 8)?);
            let name = notes.get(at + 12..at + 12 + namesz)?;
            let desc_at = at + 12 + align4(namesz);
            if name == b"Xen\0" && t == kind {
                return notes.get(desc_at..desc_at + descsz);
            }
            at = desc_at + align4(descsz);
        }
        None
    })
}

/// The PVH entry address of a kernel ELF built with CONFIG_PVH, which QEMU
/// and Xen boot without a bootloader or decompressor.
pub fn pvh_entry(bytes: &[u8]) -> Option<u64> {
    let desc = xen_note(bytes, XEN_ELFNOTE_PHYS32_ENTRY)?;
    match desc.len() {
        4 => Some(u32_at(desc, 0)? as u64),
        8 => u64_at(desc, 0),
        _ => None,
    }
}

/// The modules a kernel module needs loaded first (`depends=` in `.modinfo`).
pub(crate) fn module_depends(bytes: &[u8]) -> Option<Vec<String>> {
    let info = section(bytes, ".modinfo")?;
    let deps = info.split(|c| *c == 0).find_map(|kv| kv.strip_prefix(b"depends="))?;
    Some(String::from_utf8_lossy(deps).split(',').filter(|d| !d.is_empty()).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_of_our_own_binary() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(machine(&me), Some(EM_X86_64));
        assert_eq!(machine(b"#!/bin/sh\n"), None);
        assert_eq!(machine_name(EM_AARCH64), "aarch64");
    }

    #[test]
    fn finds_sections_by_name() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert!(section(&me, ".text").is_some_and(|t| !t.is_empty()));
        assert!(section(&me, ".modinfo").is_none());
        assert_eq!(module_depends(&me), None);
    }

    #[test]
    fn finds_the_pvh_entry_note() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(pvh_entry(&me), None, "a program has no PVH entry");
        assert_eq!(pvh_entry(b"\x7fELF"), None);
    }
}
