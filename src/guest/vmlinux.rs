//! The kernel inside a bzImage, for a direct boot. A bzImage is a small
//! real-mode setup program plus a compressed vmlinux that the kernel's own
//! decompressor unpacks at boot; under TCG that decompression is emulated
//! instruction by instruction and costs a large share of the boot. A vmlinux
//! with a PVH entry point (CONFIG_PVH, a Xen ELF note QEMU also honours) can be
//! loaded by QEMU as it is, which is how Firecracker-style VMMs boot fast.
//! The runner unpacks it once into the cache; the launcher boots it.

use std::io::Read;

use super::decompress;
use super::elf::{u16_at, u32_at};

/// Why a kernel cannot be booted directly (the launcher then boots the bzImage).
pub(crate) type Unsupported = String;

/// The uncompressed kernel ELF of `bzimage`, if it has a PVH entry point and a
/// payload compressed with gzip, LZ4 (Debian 12's cloud kernel), xz (Debian
/// 12's generic kernel) or zstd (Debian 13's kernels).
pub(crate) fn extract(bzimage: &[u8]) -> Result<Vec<u8>, Unsupported> {
    let payload = payload(bzimage)?;
    let unpacked =
        |format: &str, r: std::io::Result<Vec<u8>>| r.map_err(|e| format!("its {format} payload does not unpack: {e}"));
    let elf = match payload.get(..4) {
        Some([0x1f, 0x8b, ..]) => gunzip(payload)?,
        Some([0x02, 0x21, 0x4c, 0x18]) => lz4_legacy(payload)?,
        Some([0xfd, b'7', b'z', b'X']) => unpacked("xz", decompress::xz(payload))?,
        Some([0x28, 0xb5, 0x2f, 0xfd]) => unpacked("zstd", decompress::zstd(payload))?,
        _ => {
            return Err(
                "its payload is in a compression format vlab does not unpack (gzip, LZ4, xz and zstd only)".into()
            );
        }
    };
    if super::elf::machine(&elf) != Some(super::elf::EM_X86_64) {
        return Err("the unpacked payload is not an x86-64 ELF".into());
    }
    if super::elf::pvh_entry(&elf).is_none() {
        return Err("the kernel has no PVH entry point (built without CONFIG_PVH)".into());
    }
    Ok(elf)
}

/// The compressed payload, located by the setup header (boot protocol 2.08+):
/// it starts `payload_offset` bytes into the protected-mode part.
fn payload(bzimage: &[u8]) -> Result<&[u8], Unsupported> {
    let not = || "not a bzImage with a payload header (boot protocol 2.08 or later)".to_string();
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err(not());
    }
    let word = |at: usize| u32_at(bzimage, at).map(|w| w as usize);
    let (Some(version), Some(offset), Some(length)) = (u16_at(bzimage, 0x206), word(0x248), word(0x24c)) else {
        return Err(not());
    };
    if version < 0x208 || length == 0 {
        return Err(not());
    }
    let setup_sects = match bzimage[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + offset;
    bzimage.get(start..start + length).ok_or_else(|| "the bzImage is cut short: its payload runs past the end".into())
}

fn gunzip(payload: &[u8]) -> Result<Vec<u8>, Unsupported> {
    let mut out = Vec::new();
    // The payload ends with the decompressed size (4 bytes) after the gzip member; the decoder stops before it.
    flate2::read::GzDecoder::new(payload)
        .read_to_end(&mut out)
        .map_err(|e| format!("its gzip payload does not unpack: {e}"))?;
    Ok(out)
}

/// The LZ4 "legacy" format of `lz4 -l`, which the kernel build uses: a magic,
/// then blocks of (u32 compressed size, block), each unpacking to at most 8 MiB.
fn lz4_legacy(payload: &[u8]) -> Result<Vec<u8>, Unsupported> {
    const BLOCK: usize = 8 << 20;
    const MAGIC: usize = 0x184c_2102;
    // The last 4 bytes are the decompressed size, appended by the kernel build.
    let size_at = payload.len().saturating_sub(4);
    let expected = u32_at(payload, size_at).ok_or("an empty LZ4 payload")? as usize;
    let mut out = Vec::with_capacity(expected);
    let mut at = 4;
    while at + 4 <= size_at {
        let n = u32_at(payload, at).expect("within the payload") as usize;
        if n == MAGIC {
            at += 4; // concatenated streams repeat the magic
            continue;
        }
        let block = payload.get(at + 4..at + 4 + n).ok_or("an LZ4 block runs past the payload")?;
        let from = out.len();
        out.resize(from + BLOCK, 0);
        let got = lz4_flex::block::decompress_into(block, &mut out[from..])
            .map_err(|e| format!("its LZ4 payload does not unpack: {e}"))?;
        out.truncate(from + got);
        at += 4 + n;
    }
    if out.len() != expected {
        return Err(format!("its LZ4 payload unpacked to {} bytes, not the {expected} it declares", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 file with one PT_NOTE segment holding `note`.
    fn elf_with_note(note_type: u32) -> Vec<u8> {
        let mut note = Vec::new();
        note.extend(4u32.to_le_bytes()); // namesz
        note.extend(4u32.to_le_bytes()); // descsz
        note.extend(note_type.to_le_bytes());
        note.extend(b"Xen\0");
        note.extend(0x0100_0000u32.to_le_bytes());
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        elf[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        elf[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        elf[ph + 32..ph + 40].copy_from_slice(&(note.len() as u64).to_le_bytes()); // p_filesz
        elf.extend(note);
        elf.extend(vec![0x90u8; 3 << 20]); // padding that compresses, and spans blocks
        elf
    }

    /// A bzImage-shaped file: setup header, then `payload` at payload_offset.
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512];
        img[0x1f1] = 4;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img.extend(vec![0xccu8; 16]);
        img.extend(payload);
        img
    }

    fn lz4_payload(data: &[u8], block: usize) -> Vec<u8> {
        let mut p = 0x184c_2102u32.to_le_bytes().to_vec();
        for chunk in data.chunks(block) {
            let c = lz4_flex::block::compress(chunk);
            p.extend((c.len() as u32).to_le_bytes());
            p.extend(c);
        }
        p.extend((data.len() as u32).to_le_bytes());
        p
    }

    #[test]
    fn unpacks_an_lz4_kernel_with_a_pvh_note() {
        let elf = elf_with_note(18);
        let got = extract(&bzimage(&lz4_payload(&elf, 1 << 20))).unwrap();
        assert!(got == elf, "the unpacked kernel differs from the original");
        assert_eq!(crate::guest::elf::pvh_entry(&got), Some(0x0100_0000));
    }

    #[test]
    fn unpacks_a_gzip_kernel() {
        let elf = elf_with_note(18);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &elf).unwrap();
        let mut payload = gz.finish().unwrap();
        payload.extend((elf.len() as u32).to_le_bytes());
        assert!(extract(&bzimage(&payload)).unwrap() == elf);
    }

    #[test]
    fn unpacks_xz_with_the_x86_filter_and_zstd_kernels() {
        let elf = elf_with_note(18);
        for mut payload in [decompress::tests::xz_bcj(&elf), decompress::tests::zstd_large_window(&elf)] {
            payload.extend((elf.len() as u32).to_le_bytes());
            assert!(extract(&bzimage(&payload)).unwrap() == elf);
        }
    }

    #[test]
    fn says_why_a_kernel_cannot_boot_directly() {
        let no_pvh = extract(&bzimage(&lz4_payload(&elf_with_note(5), 1 << 20))).unwrap_err();
        assert!(no_pvh.contains("CONFIG_PVH"), "{no_pvh}");
        let xz = extract(&bzimage(b"\xfd7zXZ\0rest")).unwrap_err();
        assert!(xz.contains("xz payload does not unpack"), "{xz}");
        let unknown = extract(&bzimage(b"BZh91AY&SY")).unwrap_err();
        assert!(unknown.contains("compression format"), "{unknown}");
        assert!(extract(b"#!/bin/sh").unwrap_err().contains("not a bzImage"));
        let mut header_only = vec![0u8; 0x206];
        header_only[0x202..].copy_from_slice(b"HdrS");
        assert!(
            extract(&header_only).unwrap_err().contains("not a bzImage"),
            "a header cut short is an error, not a panic"
        );
        let mut cut = bzimage(&lz4_payload(&elf_with_note(18), 1 << 20));
        cut.truncate(cut.len() - 100);
        assert!(extract(&cut).unwrap_err().contains("cut short"));
        let mut corrupt = lz4_payload(&elf_with_note(18), 1 << 20);
        let n = corrupt.len();
        corrupt[n - 4..].copy_from_slice(&7u32.to_le_bytes());
        assert!(extract(&bzimage(&corrupt)).unwrap_err().contains("not the 7"));
    }
}
