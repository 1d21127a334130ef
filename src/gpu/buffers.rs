//! Buffer helpers: storage buffers with exactly the usages they need, uniforms, and a
//! blocking read-back for tests, verification and once-per-interval metrics.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use bytemuck::Pod;
use wgpu::util::DeviceExt;

/// Storage usages: bound to kernels, written by the queue, copied out for read-back.
const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

/// Zero-sized bindings are invalid, and vec4 kernels read whole 16-byte groups: every
/// buffer is a non-zero multiple of 16 bytes.
fn padded(bytes: u64) -> u64 {
    bytes.max(16).next_multiple_of(16)
}

/// A zeroed storage buffer of `bytes` bytes (checked against the binding limit).
pub fn storage(gpu: &Gpu, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
    gpu.check_binding(label, bytes)?;
    Ok(gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: padded(bytes),
        usage: STORAGE,
        mapped_at_creation: false,
    }))
}

/// A storage buffer holding `data`.
pub fn storage_init<T: Pod>(gpu: &Gpu, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    gpu.check_binding(label, bytes.len() as u64)?;
    let mut contents = bytes.to_vec();
    contents.resize(padded(bytes.len() as u64) as usize, 0);
    Ok(gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &contents,
        usage: STORAGE,
    }))
}

/// A uniform buffer holding `params`, writable later by the queue.
pub fn uniform<T: Pod>(gpu: &Gpu, label: &str, params: &T) -> wgpu::Buffer {
    gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::bytes_of(params),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

/// Copies `len` elements of `T` from the start of `buf` back to the host, waiting for
/// everything submitted before.
pub fn read<T: Pod>(gpu: &Gpu, buf: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
    let bytes = (len * std::mem::size_of::<T>()) as u64;
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read-back"),
        size: bytes.next_multiple_of(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read-back") });
    enc.copy_buffer_to_buffer(buf, 0, &staging, 0, bytes.next_multiple_of(4));
    gpu.queue.submit([enc.finish()]);
    map_read(gpu, &staging, len)
}

/// Maps a `MAP_READ` buffer whose copy has been submitted and returns its first `len`
/// elements.
pub fn map_read<T: Pod>(gpu: &Gpu, staging: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
    let mut out = vec![T::zeroed(); len];
    map_read_into(gpu, staging, &mut out)?;
    Ok(out)
}

/// [`map_read`] into `out` (its length says how many elements).
pub fn map_read_into<T: Pod>(gpu: &Gpu, staging: &wgpu::Buffer, out: &mut [T]) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    gpu.wait()?;
    rx.recv()
        .map_err(|_| Error::Gpu("read-back: the map callback never ran".into()))?
        .map_err(|e| Error::Gpu(format!("read-back: {e}")))?;
    {
        let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu(format!("read-back: {e}")))?;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        let n = bytes.len();
        bytes.copy_from_slice(&view[..n]);
    }
    staging.unmap();
    gpu.check_errors()
}
