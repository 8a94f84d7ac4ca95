//! The data sum of the FITS checksum convention (the ones'-complement sum of a data unit's
//! 32-bit big-endian words, written as DATASUM), accumulated while the pixels are written: a
//! reference file's checksums then cost a pass over memory already in the cache instead of
//! reading the file back (cfitsio's `ffpcks` added 0.4 s to a full-frame DARK file).

/// Pixels summed before the partial sum is folded, well below what would overflow a u64 for
/// 8-byte pixels (two words of up to 2^32 each).
const FOLD_EVERY: usize = 1 << 24;

/// The running data sum of one image HDU.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DataSum(u64);

impl DataSum {
    /// Adds `data`, the pixels from `first_pixel` on (0-based, in file order), each `width`
    /// bytes in the file and stored as the bits `bits` gives (big-endian, unsigned types offset
    /// by BZERO, as cfitsio stores them). Padding is zero and adds nothing, so pixels may come
    /// in any order.
    pub(crate) fn add<T: Copy>(
        &mut self,
        first_pixel: u64,
        data: &[T],
        width: usize,
        bits: impl Fn(T) -> u64,
    ) {
        for (c, chunk) in data.chunks(FOLD_EVERY).enumerate() {
            let first = first_pixel + (c * FOLD_EVERY) as u64;
            let sum: u64 = match width {
                8 => chunk
                    .iter()
                    .map(|v| {
                        let b = bits(*v);
                        (b >> 32) + (b & 0xffff_ffff)
                    })
                    .sum(),
                4 => chunk.iter().map(|&v| bits(v)).sum(),
                // Two pixels a word: the even one in the upper half.
                2 => chunk
                    .iter()
                    .zip(first..)
                    .map(|(&v, k)| bits(v) << (16 * (1 - (k & 1))))
                    .sum(),
                _ => chunk
                    .iter()
                    .zip(first..)
                    .map(|(&v, k)| bits(v) << (8 * (3 - (k & 3))))
                    .sum(),
            };
            self.0 = fold(self.0 + fold(sum));
        }
    }

    /// The DATASUM value.
    pub(crate) fn value(&self) -> u32 {
        fold(self.0) as u32
    }
}

/// The ones'-complement (end-around carry) reduction of a sum of 32-bit words to 32 bits.
fn fold(mut s: u64) -> u64 {
    while s >> 32 != 0 {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum of the stored bytes as big-endian words, the slow way.
    fn by_bytes(bytes: &[u8]) -> u32 {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().div_ceil(4) * 4, 0);
        let s: u64 = padded
            .chunks_exact(4)
            .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
            .sum();
        fold(s) as u32
    }

    #[test]
    fn sums_equal_the_stored_bytes_for_every_width_and_order() {
        let u8s: Vec<u8> = (0..37u32).map(|i| (i * 97 % 256) as u8).collect();
        let u16s: Vec<u16> = (0..23u32).map(|i| (i * 40503 % 65536) as u16).collect();
        let f32s: Vec<f32> = (0..11)
            .map(|i| i as f32 * -1.75e7)
            .chain([f32::NAN])
            .collect();
        let f64s: Vec<f64> = (0..9).map(|i| i as f64 * 3.1e300).collect();
        // u16 is stored as i16 with BZERO 32768: the top bit flipped.
        let stored16: Vec<u8> = u16s
            .iter()
            .flat_map(|v| (v ^ 0x8000).to_be_bytes())
            .collect();
        let stored32: Vec<u8> = f32s
            .iter()
            .flat_map(|v| v.to_bits().to_be_bytes())
            .collect();
        let stored64: Vec<u8> = f64s
            .iter()
            .flat_map(|v| v.to_bits().to_be_bytes())
            .collect();
        // Written in two pieces, the second first.
        let split = |n: usize| n / 2 + 1;
        let byte = |v: u8| u64::from(v);
        let mut s = DataSum::default();
        s.add(split(37) as u64, &u8s[split(37)..], 1, byte);
        s.add(0, &u8s[..split(37)], 1, byte);
        assert_eq!(s.value(), by_bytes(&u8s));
        let offset = |v: u16| u64::from(v ^ 0x8000);
        let mut s = DataSum::default();
        s.add(split(23) as u64, &u16s[split(23)..], 2, offset);
        s.add(0, &u16s[..split(23)], 2, offset);
        assert_eq!(s.value(), by_bytes(&stored16));
        let mut s = DataSum::default();
        s.add(0, &f32s, 4, |v: f32| u64::from(v.to_bits()));
        assert_eq!(s.value(), by_bytes(&stored32));
        let mut s = DataSum::default();
        s.add(0, &f64s, 8, f64::to_bits);
        assert_eq!(s.value(), by_bytes(&stored64));
    }
}
