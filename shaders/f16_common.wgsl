enable f16;

// Mixed precision's one conversion of an f32 to f16, shared by cast_f16.wgsl and the f16
// transpose (put before each): a finite value saturates at ±65504, f16's largest finite
// value (WGSL leaves an out-of-range conversion undefined), and is rounded to one of the
// two nearest f16 values (which one WGSL leaves to the adapter; llvmpipe rounds to
// nearest, ties to even, as the CPU twin `cpu::ops::cast_f16` does). A NaN or an infinity
// stays non-finite, so a diverging run still reaches a non-finite loss: the clamp makes it
// ±65504 (or leaves a NaN), and doubling that in f16 gives ±∞ (or NaN). Non-finite is
// tested on the bits (WGSL lets an implementation assume floats are finite).
fn to_f16(x: f32) -> f16 {
    let h = f16(clamp(x, -65504.0, 65504.0));
    if ((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u) {
        return h * 2.0h;
    }
    return h;
}
