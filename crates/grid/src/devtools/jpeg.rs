//! Cuts a byte stream of concatenated JPEGs (ffmpeg's `image2pipe` of
//! `mjpeg`) into whole images, by walking the JPEG markers: header segments
//! by their lengths, then the entropy-coded data up to its end-of-image
//! marker (inside it, 0xFF is always followed by 0x00 or a restart marker).

use bytes::{Bytes, BytesMut};

/// Largest image taken; a stream that never ends one is dropped past it.
const MAX_IMAGE: usize = 32 << 20;

/// Splits JPEGs out of a stream fed in pieces.
#[derive(Default)]
pub struct Splitter {
    buf: BytesMut,
}

/// Where the end of the image starting at `b[0]` is, if `b` holds all of it.
/// `Err` if `b` does not start with a JPEG.
fn image_end(b: &[u8]) -> Result<Option<usize>, ()> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[..2] != [0xFF, 0xD8] {
        return Err(());
    }
    let mut i = 2;
    // Segments with a length, up to the start of scan.
    loop {
        if i + 4 > b.len() {
            return Ok(None);
        }
        if b[i] != 0xFF {
            return Err(());
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD9 {
            return Ok(Some(i + 2));
        }
        let len = usize::from(b[i + 2]) << 8 | usize::from(b[i + 3]);
        i += 2 + len;
        if marker == 0xDA {
            break;
        }
    }
    // Entropy-coded data (and any further scans) up to end of image.
    while i + 1 < b.len() {
        if b[i] == 0xFF {
            match b[i + 1] {
                0xD9 => return Ok(Some(i + 2)),
                0x00 | 0xD0..=0xD7 | 0xFF => i += 1,
                // Another segment (a further scan of a progressive JPEG): skip it.
                _ => {
                    if i + 4 > b.len() {
                        return Ok(None);
                    }
                    i += 2 + (usize::from(b[i + 2]) << 8 | usize::from(b[i + 3]));
                    continue;
                }
            }
        }
        i += 1;
    }
    Ok(None)
}

impl Splitter {
    /// Feeds `data`; returns the images it completed.
    pub fn push(&mut self, data: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match image_end(&self.buf) {
                Ok(Some(end)) => out.push(self.buf.split_to(end).freeze()),
                Ok(None) if self.buf.len() <= MAX_IMAGE => break,
                // Not a JPEG here, or an endless one: resynchronise on the next start.
                _ => {
                    let next = self.buf[1..]
                        .windows(2)
                        .position(|w| w == [0xFF, 0xD8])
                        .map_or(self.buf.len(), |p| p + 1);
                    let _ = self.buf.split_to(next);
                    if self.buf.is_empty() {
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal JPEG-shaped image: SOI, a DQT holding 0xFF 0xD9 as data,
    /// SOS, entropy data with stuffed and restart bytes, EOI.
    fn image(tag: u8) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x05, 0xFF, 0xD9, tag];
        v.extend([0xFF, 0xDA, 0x00, 0x03, 0x01]);
        v.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, tag, 0xFF, 0xD9]);
        v
    }

    #[test]
    fn images_are_found_whatever_the_pieces() {
        let stream: Vec<u8> = [image(1), image(2), image(3)].concat();
        for piece in [1, 2, 3, 7, stream.len()] {
            let mut s = Splitter::default();
            let got: Vec<Bytes> = stream.chunks(piece).flat_map(|c| s.push(c)).collect();
            assert_eq!(got.len(), 3, "pieces of {piece}");
            assert_eq!(got[1].as_ref(), image(2).as_slice());
        }
    }

    #[test]
    fn garbage_before_an_image_is_skipped() {
        let mut s = Splitter::default();
        let mut stream = b"not a jpeg \xFF\x00".to_vec();
        stream.extend(image(9));
        let got = s.push(&stream);
        assert_eq!(got, vec![Bytes::from(image(9))]);
        assert!(s.push(b"\x00\x01").is_empty());
    }
}
