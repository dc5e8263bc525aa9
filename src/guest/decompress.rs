//! The compressors of kernel packages: xz (Debian's modules, Debian 12's
//! generic kernel, with the x86 BCJ filter) and zstd (Debian 13's kernels,
//! Ubuntu's modules). Each reads the first stream or frame and ignores what
//! follows, such as the 4-byte size the kernel build appends to its payload.

use std::io::Read;

/// The first xz stream of `data`, with whatever filters (BCJ) its blocks name.
pub(super) fn xz(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    liblzma::bufread::XzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// zstd's largest window on 64-bit hosts (ZSTD_WINDOWLOG_MAX_64). The decoder
/// refuses frames asking for more than 2^27 bytes unless told otherwise; the
/// kernel's `zstd -22 --ultra` already asks for exactly that, and `--long=N`
/// or a newer level table may ask for more.
const WINDOW_LOG_MAX: u32 = 31;

/// The first zstd frame of `data`.
pub(super) fn zstd(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data)?.single_frame();
    decoder.window_log_max(WINDOW_LOG_MAX)?;
    let mut out = Vec::new();
    decoder.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    /// `data` as the kernel build compresses a payload: xz with the x86 BCJ
    /// filter before LZMA2, then the uncompressed size.
    pub(crate) fn xz_bcj(data: &[u8]) -> Vec<u8> {
        let mut filters = liblzma::stream::Filters::new();
        filters.x86();
        filters.lzma2(&liblzma::stream::LzmaOptions::new_preset(6).unwrap());
        let stream = liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc32).unwrap();
        let mut w = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    /// `data` as one zstd frame asking for a 2^28-byte window, past the decoder's default limit.
    pub(crate) fn zstd_large_window(data: &[u8]) -> Vec<u8> {
        let mut w = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        w.long_distance_matching(true).unwrap();
        w.window_log(28).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn xz_with_the_x86_filter_and_a_trailer() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| [0xe8, (i % 7) as u8, 0, 0, 0]).collect();
        let mut packed = xz_bcj(&data);
        packed.extend((data.len() as u32).to_le_bytes());
        assert!(xz(&packed).unwrap() == data);
        assert!(xz(b"not xz").is_err());
    }

    #[test]
    fn zstd_with_a_large_window_and_a_trailer() {
        let data = vec![0x90u8; 1 << 20];
        let mut packed = zstd_large_window(&data);
        packed.extend((data.len() as u32).to_le_bytes());
        assert!(zstd(&packed).unwrap() == data);
        assert!(zstd(b"not zstd").is_err());
    }
}
