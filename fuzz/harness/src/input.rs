//! The input cursor every target reads its bytes with, and the edits that alter a
//! genuine record.

/// Reads a fuzz input front to back; past its end every read yields zeros or nothing.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        u64::from_be_bytes(bytes)
    }

    /// Up to `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Applies `edits` to a genuine record: each 3 bytes are a big-endian position (modulo
/// the length) and a byte to XOR there; 1 byte left over truncates the record by that
/// many bytes, 2 bytes left over are appended.
pub(crate) fn alter(genuine: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut altered = genuine.to_vec();
    let mut chunks = edits.chunks_exact(3);
    for edit in &mut chunks {
        if !altered.is_empty() {
            let i = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % altered.len();
            altered[i] ^= edit[2];
        }
    }
    match *chunks.remainder() {
        [cut] => altered.truncate(altered.len().saturating_sub(usize::from(cut))),
        [a, b] => altered.extend_from_slice(&[a, b]),
        _ => {}
    }
    altered
}
