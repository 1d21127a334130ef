// Shared counter-based hash (prepended to dropout.wgsl when its module is built); the same
// functions in Rust are rng::lowbias32 and rng::dropout_hash, and a test holds the two to
// the same bits.
//
// lowbias32: Chris Wellons' 32-bit integer hash (hash prospector, bias ≈ 0.17), a bijection.
// dropout_hash: lowbias32 chained over (seed low, seed high, epoch, sample, element),
// h ← lowbias32(h ^ word) from h = 0x9e3779b9. u32 products wrap, as Rust's wrapping_mul.

fn lowbias32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn dropout_hash(seed_lo: u32, seed_hi: u32, epoch: u32, sample: u32, element: u32) -> u32 {
    var h = 0x9e3779b9u;
    h = lowbias32(h ^ seed_lo);
    h = lowbias32(h ^ seed_hi);
    h = lowbias32(h ^ epoch);
    h = lowbias32(h ^ sample);
    h = lowbias32(h ^ element);
    return h;
}
