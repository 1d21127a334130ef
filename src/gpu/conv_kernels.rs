//! The convolution, max-pooling and dropout kernels and their parameter blocks (the
//! layer-sequence ops; `kernels.rs` holds the fully connected network's). The math of
//! each is in the header of its file in `shaders/`; the CPU twins are in `cpu::conv` and
//! `cpu::dropout`.

use super::pipeline::{build, linear_groups, Kernel};
use bytemuck::{Pod, Zeroable};

/// `conv2d.wgsl`'s parameters: the shape of [`crate::cpu::conv::Conv2dShape`] and flags.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ConvParams {
    pub batch: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub k: u32,
    pub stride: u32,
    pub pad: u32,
    pub h_out: u32,
    pub w_out: u32,
    pub flags: u32,
    /// Where `w` (or `dw`) and `b` (or `db`) start in their buffers, in elements.
    pub w_off: u32,
    pub b_off: u32,
    pub _pad: [u32; 3],
}

impl ConvParams {
    pub const RELU: u32 = 1;
    pub const MASK: u32 = 2;
    pub const ACCUMULATE: u32 = 4;

    /// The block for one convolution of shape `s` with `flags`, its weight (and weight
    /// gradient) at element `w_off` of its buffer and its bias (gradient) at `b_off`.
    pub fn new(s: &crate::cpu::conv::Conv2dShape, flags: u32, w_off: usize, b_off: usize) -> Self {
        ConvParams {
            batch: s.batch as u32,
            c_in: s.c_in as u32,
            h: s.h as u32,
            w: s.w as u32,
            c_out: s.c_out as u32,
            k: s.k as u32,
            stride: s.stride as u32,
            pad: s.pad as u32,
            h_out: s.h_out as u32,
            w_out: s.w_out as u32,
            flags,
            w_off: w_off as u32,
            b_off: b_off as u32,
            _pad: [0; 3],
        }
    }

    /// The grids of `conv2d_forward`, `conv2d_backward_input`, `conv2d_backward_weights`
    /// and `conv2d_backward_bias`: one invocation per 4×4 block (see the shader's header).
    pub fn groups(&self) -> ConvGroups {
        let q = |v: usize| v.div_ceil(4);
        let u = |v: u32| v as usize;
        let (b, ci, co) = (u(self.batch), u(self.c_in), u(self.c_out));
        ConvGroups {
            forward: linear_groups(b * u(self.h_out) * q(u(self.w_out)) * co.div_ceil(8), 64),
            backward_input: linear_groups(q(b * u(self.h) * u(self.w)) * q(ci), 64),
            backward_weights: linear_groups(q(ci * u(self.k) * u(self.k)) * q(co), 16),
            backward_bias: linear_groups(co, 16),
        }
    }
}

/// The workgroup grids of the four convolution kernels for one shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGroups {
    pub forward: [u32; 3],
    pub backward_input: [u32; 3],
    pub backward_weights: [u32; 3],
    pub backward_bias: [u32; 3],
}

/// `maxpool2d.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PoolParams {
    pub batch: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub k: u32,
    pub h_out: u32,
    pub w_out: u32,
    pub _pad: u32,
}

impl PoolParams {
    pub fn new(s: &crate::cpu::conv::Pool2dShape) -> Self {
        PoolParams {
            batch: s.batch as u32,
            c: s.c as u32,
            h: s.h as u32,
            w: s.w as u32,
            k: s.k as u32,
            h_out: s.h_out as u32,
            w_out: s.w_out as u32,
            _pad: 0,
        }
    }
}

/// `dropout.wgsl`'s parameters; `threshold` and `scale` from `rng::dropout_threshold` and
/// `rng::dropout_scale`, so both sides keep and scale alike.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DropoutParams {
    pub len: u32,
    pub width: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub epoch: u32,
    pub threshold: u32,
    pub scale: f32,
    pub _pad: u32,
}

impl DropoutParams {
    /// The block for `batch` rows of `width` values, dropout probability `p` in `[0, 1)`.
    pub fn new(batch: usize, width: usize, seed: u64, epoch: u32, p: f32) -> Self {
        DropoutParams {
            len: (batch * width) as u32,
            width: width as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            epoch,
            threshold: crate::rng::dropout_threshold(p),
            scale: crate::rng::dropout_scale(p),
            _pad: 0,
        }
    }
}

/// `augment.wgsl`'s parameters: `len` values of samples `[c, h, w]`, the draws' keys and
/// the [`Augment`](crate::data::augment::Augment).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct AugmentParams {
    pub len: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub epoch: u32,
    pub flip: u32,
    pub shift: u32,
    pub _pad: [u32; 3],
}

impl AugmentParams {
    /// The block for `batch` samples of shape `(c, h, w)`.
    pub fn new(
        batch: usize,
        (c, h, w): (usize, usize, usize),
        seed: u64,
        epoch: u32,
        a: &crate::data::augment::Augment,
    ) -> Self {
        AugmentParams {
            len: (batch * c * h * w) as u32,
            c: c as u32,
            h: h as u32,
            w: w as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            epoch,
            flip: u32::from(a.flip),
            shift: a.shift,
            _pad: [0; 3],
        }
    }
}

/// The convolution, max-pooling and dropout kernels (`conv2d.wgsl`, `conv_im2col.wgsl`,
/// `maxpool2d.wgsl`, `dropout.wgsl` with `hash_common.wgsl`); CPU twins in `cpu::conv` and `cpu::dropout`.
pub struct ConvKernels {
    pub conv2d_forward: Kernel,
    pub conv2d_backward_input: Kernel,
    pub conv2d_backward_weights: Kernel,
    pub conv2d_backward_bias: Kernel,
    pub maxpool2d_forward: Kernel,
    pub maxpool2d_backward: Kernel,
    pub dropout_forward: Kernel,
    pub dropout_backward: Kernel,
    /// The raw hash, for the test that WGSL and Rust agree.
    pub dropout_hash_bits: Kernel,
    /// `augment.wgsl`: flips and shifts of a training batch (CPU twin `data::augment`).
    pub augment: Kernel,
    /// `conv_im2col.wgsl`: the im2col path's patches, their adjoint and the two layout
    /// changes between the GEMMs' rows and NCHW (see [`super::conv_im2col`]).
    pub conv_im2col: Kernel,
    pub conv_col2im: Kernel,
    pub conv_rows_to_nchw: Kernel,
    pub conv_nchw_to_rows: Kernel,
}

impl ConvKernels {
    /// Compiles them (inside the caller's validation error scope).
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let module = |name: &str, src: &str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
        };
        let conv = module("conv2d.wgsl", include_str!("../../shaders/conv2d.wgsl"));
        let pool = module("maxpool2d.wgsl", include_str!("../../shaders/maxpool2d.wgsl"));
        let dropout = module(
            "dropout.wgsl",
            &[include_str!("../../shaders/hash_common.wgsl"), include_str!("../../shaders/dropout.wgsl")].concat(),
        );
        let augment = module(
            "augment.wgsl",
            &[include_str!("../../shaders/hash_common.wgsl"), include_str!("../../shaders/augment.wgsl")].concat(),
        );
        let im2col = module(
            "conv_im2col.wgsl",
            &[&super::pipeline::grid_prelude(), include_str!("../../shaders/conv_im2col.wgsl")].concat(),
        );
        ConvKernels {
            conv_im2col: build(device, &im2col, "conv_im2col", "urrw", &[]),
            conv_col2im: build(device, &im2col, "conv_col2im", "urrw", &[]),
            conv_rows_to_nchw: build(device, &im2col, "conv_rows_to_nchw", "urrw", &[]),
            conv_nchw_to_rows: build(device, &im2col, "conv_nchw_to_rows", "urrw", &[]),
            conv2d_forward: build(device, &conv, "conv2d_forward", "urrrw", &[]),
            conv2d_backward_input: build(device, &conv, "conv2d_backward_input", "urrrw", &[]),
            conv2d_backward_weights: build(device, &conv, "conv2d_backward_weights", "urrrw", &[]),
            conv2d_backward_bias: build(device, &conv, "conv2d_backward_bias", "urrrw", &[]),
            maxpool2d_forward: build(device, &pool, "maxpool2d_forward", "urww", &[]),
            maxpool2d_backward: build(device, &pool, "maxpool2d_backward", "urww", &[]),
            dropout_forward: build(device, &dropout, "dropout_forward", "urrw", &[]),
            dropout_backward: build(device, &dropout, "dropout_backward", "urrw", &[]),
            dropout_hash_bits: build(device, &dropout, "dropout_hash_bits", "urrw", &[]),
            augment: build(device, &augment, "augment", "urrw", &[]),
        }
    }
}
