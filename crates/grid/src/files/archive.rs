//! The zip archives Selenium's clients exchange with a grid: one file per
//! archive, base64 in JSON. Unpacking is bounded and trusts no name.

use gridiron_domain::files::check_file_name;
use gridiron_domain::GridError;
use std::io::{Cursor, Read, Write};

/// One file out of a client's archive.
#[derive(Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// Its plain name (checked: no directory, no `..`).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Decodes base64 as clients send it (Python's `encodebytes` breaks lines).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, GridError> {
    use base64::Engine;
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| GridError::invalid_argument(format!("the file is not valid base64: {e}")))
}

/// Encodes bytes as base64 for a JSON answer.
pub fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The one regular file in `archive`, unpacked to at most `limit` bytes.
/// Several entries, directories, links, names with a path, and contents over
/// the limit (whatever the archive declares) are refused.
pub fn unpack_one(archive: &[u8], limit: u64) -> Result<Unpacked, GridError> {
    let bad = |why: String| GridError::invalid_argument(format!("refused upload: {why}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(archive))
        .map_err(|e| bad(format!("not a zip archive: {e}")))?;
    if zip.len() != 1 {
        return Err(bad(format!(
            "the archive must hold exactly one file, it holds {} entries",
            zip.len()
        )));
    }
    let entry = zip
        .by_index(0)
        .map_err(|e| bad(format!("unreadable entry: {e}")))?;
    if !entry.is_file() || entry.is_symlink() {
        return Err(bad("the entry is not a regular file".into()));
    }
    let name = entry
        .name()
        .map_err(|e| bad(format!("unreadable entry name: {e}")))?
        .into_owned();
    check_file_name("the uploaded file's name", &name)?;
    if entry.size() > limit {
        return Err(bad(format!(
            "the file unpacks to {} bytes, over the grid's limit of {limit} bytes (--max-body-bytes)",
            entry.size()
        )));
    }
    let mut bytes = Vec::new();
    // The declared size may lie: never read more than the limit allows.
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("the entry does not unpack: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(bad(format!(
            "the file unpacks to more than the grid's limit of {limit} bytes (--max-body-bytes)"
        )));
    }
    Ok(Unpacked { name, bytes })
}

/// An archive holding `bytes` as the file `name` (stored: downloads are
/// often compressed already, and the answer is base64 anyway).
pub fn pack_one(name: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
    zip.start_file(name, options)
        .map_err(std::io::Error::other)?;
    zip.write_all(bytes)?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridiron_domain::ErrorCode;

    /// An archive of `entries`, deflated as Python's client makes them.
    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            zip.start_file(*name, o).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn one_file_round_trips() {
        let packed = pack_one("report.csv", b"a,b\n1,2\n").unwrap();
        let got = unpack_one(&packed, 100).unwrap();
        assert_eq!(got.name, "report.csv");
        assert_eq!(got.bytes, b"a,b\n1,2\n");
        let deflated = archive(&[("x.txt", b"hello hello hello")]);
        assert_eq!(
            unpack_one(&deflated, 100).unwrap().bytes,
            b"hello hello hello"
        );
    }

    #[test]
    fn base64_with_line_breaks_decodes() {
        let text = encode_base64(&[7u8; 100]);
        let broken: String = text
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_base64(&broken).unwrap(), vec![7u8; 100]);
        assert!(decode_base64("not base64!").is_err());
    }

    #[test]
    fn hostile_archives_are_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("zip-slip", archive(&[("../../etc/cron.d/x", b"x")])),
            ("absolute", archive(&[("/etc/passwd", b"x")])),
            ("nested", archive(&[("dir/x.txt", b"x")])),
            ("backslash", archive(&[("..\\x.txt", b"x")])),
            ("two entries", archive(&[("a", b"1"), ("b", b"2")])),
            ("empty", archive(&[])),
            ("bomb", archive(&[("zeros", &vec![0u8; 1 << 20])])),
            ("not a zip", b"PK\x03\x04garbage".to_vec()),
        ];
        for (what, bytes) in cases {
            let e = unpack_one(&bytes, 64 * 1024).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{what}: {e:?}");
        }
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.add_directory("d/", zip::write::SimpleFileOptions::default())
            .unwrap();
        let dir = zip.finish().unwrap().into_inner();
        assert!(unpack_one(&dir, 100).is_err(), "a directory entry");
    }

    #[test]
    fn a_bomb_that_lies_about_its_size_stops_at_the_limit() {
        let mut bytes = archive(&[("zeros", &vec![0u8; 1 << 20])]);
        // Claim 10 bytes in both headers: reading must still stop at the limit.
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let at = bytes.windows(4).position(|w| w == sig).unwrap();
            let field = if sig[2] == 3 { at + 22 } else { at + 24 };
            bytes[field..field + 4].copy_from_slice(&10u32.to_le_bytes());
        }
        assert!(unpack_one(&bytes, 1000).is_err());
    }
}
