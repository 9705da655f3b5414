//! Where one JSON value ends, found without parsing it: the reader's inner
//! loop, and most of its time after decompression.
//!
//! Inside a value, 64 bytes at a time go through bit masks (quotes,
//! backslashes, brackets); a byte loop takes escapes, the tail and the
//! outside of containers. The masks come from the architecture's baseline
//! SIMD (SSE2 on x86-64, NEON on aarch64) or, on x86-64 CPUs that have
//! them, AVX2 with POPCNT and PCLMULQDQ, chosen once at run time
//! ([`Kernel::detect`]). Every kernel is tested against the same byte-wise
//! reference.

/// Bytes examined at once by the bit-mask path.
pub(super) const BLOCK_BYTES: usize = 64;

/// The instructions one scan builds its block masks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    /// SSE2 on x86-64, NEON on aarch64, plain bytes elsewhere: what every
    /// CPU of the architecture has.
    Baseline,
    /// AVX2, POPCNT, BMI1 and PCLMULQDQ: x86-64 CPUs since about 2013
    /// (Haswell, Zen). Half the compares of SSE2 per block, and a bit count
    /// and carry-less multiply in one instruction each.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub(super) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("popcnt")
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("pclmulqdq")
        {
            return Kernel::Avx2;
        }
        Kernel::Baseline
    }

    /// Every kernel this CPU can run, for tests that check each of them.
    #[cfg(test)]
    pub(super) fn runnable() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Baseline];
        if Kernel::detect() != Kernel::Baseline {
            kernels.push(Kernel::detect());
        }
        kernels
    }
}

/// Resumable state of a scan over one JSON value.
pub(super) struct ValueScan {
    pub(super) depth: u32,
    pub(super) in_string: bool,
    pub(super) pending_escape: bool,
    kernel: Kernel,
}

pub(super) enum Step {
    /// The value ends at this index (exclusive).
    Done(usize),
    /// More bytes are needed; everything before the end was consumed.
    More,
    Invalid(&'static str),
}

impl ValueScan {
    pub(super) fn new(kernel: Kernel) -> ValueScan {
        ValueScan { depth: 0, in_string: false, pending_escape: false, kernel }
    }

    /// Scans `bytes[from..]`, the value having started at `bytes[0]`.
    pub(super) fn advance(&mut self, bytes: &[u8], i: usize) -> Step {
        match self.kernel {
            Kernel::Baseline => self.advance_with::<Baseline>(bytes, i),
            // SAFETY: `Kernel::Avx2` is only chosen (by `detect`) on a CPU
            // that has every feature `advance_avx2` is compiled for.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { self.advance_avx2(bytes, i) },
        }
    }

    /// [`ValueScan::advance_with`] compiled for AVX2 and friends: the
    /// generic body is inlined here, so its masks, bit counts and prefix
    /// XOR all use them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
    unsafe fn advance_avx2(&mut self, bytes: &[u8], i: usize) -> Step {
        self.advance_with::<Avx2>(bytes, i)
    }

    #[inline(always)]
    fn advance_with<K: BlockKernel>(&mut self, bytes: &[u8], mut i: usize) -> Step {
        let len = bytes.len();
        if self.pending_escape {
            if i >= len {
                return Step::More;
            }
            self.pending_escape = false;
            i += 1;
        }
        while i < len {
            // Inside a record, most bytes are string content: whole blocks go
            // through bit masks, the byte loop takes escapes and the tail.
            // Outside any container, one byte at a time, so that the first
            // bracket hands over to the block path.
            let mut stop = if self.depth == 0 { i + 1 } else { len };
            if self.depth > 0 {
                if let Some(block) = bytes.get(i..i + BLOCK_BYTES).and_then(|b| <&[u8; BLOCK_BYTES]>::try_from(b).ok())
                {
                    match self.advance_block::<K>(block) {
                        BlockStep::Consumed => {
                            i += BLOCK_BYTES;
                            continue;
                        }
                        BlockStep::Done(k) => return Step::Done(i + k),
                        BlockStep::HasBackslash => stop = i + BLOCK_BYTES,
                    }
                }
            }
            match self.advance_bytes(bytes, i, stop) {
                Ok(next) => i = next,
                Err(step) => return step,
            }
        }
        Step::More
    }

    /// Byte by byte from `i` to `stop`: the next index to scan from, or how the scan ended.
    pub(super) fn advance_bytes(&mut self, bytes: &[u8], mut i: usize, stop: usize) -> Result<usize, Step> {
        let len = bytes.len();
        while i < stop {
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &bytes[i..stop]) {
                    None => return Ok(stop),
                    Some(k) => {
                        let j = i + k;
                        if bytes[j] == b'\\' {
                            if j + 1 >= len {
                                self.pending_escape = true;
                                return Err(Step::More);
                            }
                            i = j + 2;
                        } else {
                            self.in_string = false;
                            i = j + 1;
                            if self.depth == 0 {
                                return Err(Step::Done(i));
                            }
                        }
                    }
                }
                continue;
            }
            match bytes[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    if self.depth == 0 {
                        // A scalar ends where its container closes.
                        return Err(if i == 0 { Step::Invalid("unexpected closing bracket") } else { Step::Done(i) });
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Err(Step::Done(i + 1));
                    }
                }
                b',' | b' ' | b'\n' | b'\r' | b'\t' if self.depth == 0 => {
                    return Err(if i == 0 { Step::Invalid("expected a value") } else { Step::Done(i) });
                }
                _ => {}
            }
            i += 1;
        }
        Ok(i)
    }

    /// One block inside a container (depth > 0), without per-byte branches:
    /// quotes toggle "inside a string" by prefix XOR, and only brackets
    /// outside strings count. Escapes are left to the byte loop.
    #[inline(always)]
    fn advance_block<K: BlockKernel>(&mut self, block: &[u8; BLOCK_BYTES]) -> BlockStep {
        let masks = K::masks(block);
        if masks.backslash != 0 {
            return BlockStep::HasBackslash;
        }
        let carried = if self.in_string { u64::MAX } else { 0 };
        // Bit k set: byte k is inside a string (an opening quote counts as inside).
        let inside = K::prefix_xor(masks.quote) ^ carried;
        let open = masks.open & !inside;
        let close = masks.close & !inside;
        let closes = close.count_ones();
        if closes < self.depth {
            // Fewer closing brackets than open containers: the value cannot
            // end in this block, whatever their order.
            self.depth = self.depth + open.count_ones() - closes;
        } else {
            let mut brackets = open | close;
            while brackets != 0 {
                let k = brackets.trailing_zeros();
                if open & (1 << k) != 0 {
                    self.depth += 1;
                } else {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return BlockStep::Done(k as usize + 1);
                    }
                }
                brackets &= brackets - 1;
            }
        }
        self.in_string = inside >> 63 != 0;
        BlockStep::Consumed
    }
}

enum BlockStep {
    Consumed,
    /// The value ends at this index of the block (exclusive).
    Done(usize),
    HasBackslash,
}

/// Bit k of each mask is set when byte k of the block is that character.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BlockMasks {
    pub(super) quote: u64,
    pub(super) backslash: u64,
    /// `{` or `[`.
    pub(super) open: u64,
    /// `}` or `]`.
    pub(super) close: u64,
}

/// How one kernel builds the masks of a block and the prefix XOR of a word.
/// Implementations are `#[inline(always)]`: their intrinsics are inlined
/// into the function compiled for the kernel's features.
trait BlockKernel {
    fn masks(block: &[u8; BLOCK_BYTES]) -> BlockMasks;

    /// Bit k of the result is the XOR of bits 0..=k of `x`.
    #[inline(always)]
    fn prefix_xor(mut x: u64) -> u64 {
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        x
    }
}

struct Baseline;

impl BlockKernel for Baseline {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn masks(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut masks = BlockMasks { quote: 0, backslash: 0, open: 0, close: 0 };
        for lane in 0..BLOCK_BYTES / 16 {
            // SAFETY: SSE2 is part of the x86_64 baseline, and the unaligned
            // 16-byte load stays inside the 64-byte block.
            unsafe {
                let mask = |v: __m128i, byte: u8| {
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8))) as u16 as u64
                };
                let v = _mm_loadu_si128(block.as_ptr().add(lane * 16).cast::<__m128i>());
                // Setting bit 5 folds '[' onto '{' and ']' onto '}'; no other byte lands on either.
                let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
                let shift = lane * 16;
                masks.quote |= mask(v, b'"') << shift;
                masks.backslash |= mask(v, b'\\') << shift;
                masks.open |= mask(folded, b'{') << shift;
                masks.close |= mask(folded, b'}') << shift;
            }
        }
        masks
    }

    /// NEON has no byte movemask: each compare result keeps one bit of its
    /// lane's position (1, 2, .., 128 per 8 bytes), and three rounds of
    /// pairwise adds fold 64 lanes into the 64 bits of one word.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    fn masks(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        use std::arch::aarch64::{
            uint8x16_t, vandq_u8, vceqq_u8, vdupq_n_u8, vgetq_lane_u64, vld1q_u8, vorrq_u8, vpaddq_u8,
            vreinterpretq_u64_u8,
        };
        const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        // SAFETY: NEON is part of the aarch64 baseline, and the four 16-byte
        // loads stay inside the 64-byte block.
        unsafe {
            let weights = vld1q_u8(WEIGHTS.as_ptr());
            let v = [0, 16, 32, 48].map(|at| vld1q_u8(block.as_ptr().add(at)));
            let mask = |lanes: [uint8x16_t; 4], byte: u8| {
                let [a, b, c, d] = lanes.map(|l| vandq_u8(vceqq_u8(l, vdupq_n_u8(byte)), weights));
                let folded = vpaddq_u8(vpaddq_u8(a, b), vpaddq_u8(c, d));
                vgetq_lane_u64::<0>(vreinterpretq_u64_u8(vpaddq_u8(folded, folded)))
            };
            // Setting bit 5 folds '[' onto '{' and ']' onto '}'; no other byte lands on either.
            let folded = v.map(|l| vorrq_u8(l, vdupq_n_u8(0x20)));
            BlockMasks {
                quote: mask(v, b'"'),
                backslash: mask(v, b'\\'),
                open: mask(folded, b'{'),
                close: mask(folded, b'}'),
            }
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    #[inline(always)]
    fn masks(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        BlockMasks::of_bytes(block)
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl BlockKernel for Avx2 {
    #[inline(always)]
    fn masks(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        use std::arch::x86_64::{
            __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
        };
        // SAFETY: only reached through `advance_avx2`, which runs on CPUs
        // with AVX2 alone; both unaligned 32-byte loads stay inside the block.
        unsafe {
            let low = _mm256_loadu_si256(block.as_ptr().cast::<__m256i>());
            let high = _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>());
            // Setting bit 5 folds '[' onto '{' and ']' onto '}'; no other byte lands on either.
            let fold = _mm256_set1_epi8(0x20);
            let (low_folded, high_folded) = (_mm256_or_si256(low, fold), _mm256_or_si256(high, fold));
            macro_rules! mask {
                ($low:expr, $high:expr, $byte:expr) => {{
                    let byte = _mm256_set1_epi8($byte as i8);
                    let low = _mm256_movemask_epi8(_mm256_cmpeq_epi8($low, byte)) as u32 as u64;
                    let high = _mm256_movemask_epi8(_mm256_cmpeq_epi8($high, byte)) as u32 as u64;
                    low | high << 32
                }};
            }
            BlockMasks {
                quote: mask!(low, high, b'"'),
                backslash: mask!(low, high, b'\\'),
                open: mask!(low_folded, high_folded, b'{'),
                close: mask!(low_folded, high_folded, b'}'),
            }
        }
    }

    /// A carry-less multiply by all ones is the prefix XOR.
    #[inline(always)]
    fn prefix_xor(x: u64) -> u64 {
        use std::arch::x86_64::{_mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set1_epi8, _mm_set_epi64x};
        // SAFETY: as in `masks`: reached only on CPUs with PCLMULQDQ.
        unsafe { _mm_cvtsi128_si64(_mm_clmulepi64_si128::<0>(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1))) as u64 }
    }
}

impl BlockMasks {
    /// The masks of `block` as `kernel` builds them.
    #[cfg(test)]
    pub(super) fn of(block: &[u8; BLOCK_BYTES], kernel: Kernel) -> BlockMasks {
        match kernel {
            Kernel::Baseline => Baseline::masks(block),
            // SAFETY: tests pass only kernels from `Kernel::runnable`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2_masks(block) },
        }
    }

    /// The portable definition; the SIMD versions are tested against it.
    #[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    pub(super) fn of_bytes(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        let mut masks = BlockMasks { quote: 0, backslash: 0, open: 0, close: 0 };
        for (k, &byte) in block.iter().enumerate() {
            let bit = 1u64 << k;
            match byte {
                b'"' => masks.quote |= bit,
                b'\\' => masks.backslash |= bit,
                b'{' | b'[' => masks.open |= bit,
                b'}' | b']' => masks.close |= bit,
                _ => {}
            }
        }
        masks
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
unsafe fn avx2_masks(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
    Avx2::masks(block)
}

/// The prefix XOR as `kernel` computes it.
#[cfg(test)]
pub(super) fn prefix_xor(x: u64, kernel: Kernel) -> u64 {
    match kernel {
        Kernel::Baseline => Baseline::prefix_xor(x),
        // SAFETY: tests pass only kernels from `Kernel::runnable`.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2_prefix_xor(x) },
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
unsafe fn avx2_prefix_xor(x: u64) -> u64 {
    Avx2::prefix_xor(x)
}
