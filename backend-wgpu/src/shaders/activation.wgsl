// Activations, forward y = f(x) and backward dx = dy·f'(x), one invocation per element.
// Same formulas as brain-core's reference (PyTorch conventions).
//
// Bindings: 0 params (uniform), 1 x (read), 2 dy (read), 3 out (read_write: y or dx).

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const FRAC_1_SQRT_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const SQRT_2_OVER_PI: f32 = 0.79788456080286536;
const GELU_TANH_C: f32 = 0.044715;


// WGSL has no erf. Two fits made for this crate (weighted least squares iterated
// towards minimax, against mpmath):
//   |x| < 1:      erf(x) = x + x·R(x²), R of degree 6 (fit error 1.2e-9 relative);
//                 adding the leading x exactly keeps the rounding on the small R term.
//   1 ≤ |x| < 4:  erf(x) = ±(1 − e^(−x²)·Q(s)), s = 1/(1 + |x|), Q of degree 8
//                 (erfc(x)·e^(x²) to 1.8e-10 relative).
//   |x| ≥ 4:      ±1 (erfc(4) = 1.5e-8 < 2⁻²⁵, so erf rounds to 1 in f32).
// Evaluated in f32 the error is at most 1.4 ulp (8.2e-8 absolute) over [−6, 6] in a
// simulation; `erf_probe` measures it on the adapter (see the crate's tests).
// A NaN fails `ax >= 1` and takes the first branch, so it propagates.
fn erf_f32(v: f32) -> f32 {
    let ax = abs(v);
    let t = ax * ax;
    if (!(ax >= 1.0)) {
        var r = 7.853846910e-05;
        r = r * t - 8.010189049e-04;
        r = r * t + 5.188327283e-03;
        r = r * t - 2.685381100e-02;
        r = r * t + 1.128358543e-01;
        r = r * t - 3.761262596e-01;
        r = r * t + 1.283791661e-01;
        return v + v * r;
    }
    if (ax < 4.0) {
        let s = 1.0 / (1.0 + ax);
        var q = 1.023437142e+00;
        q = q * s - 3.467489481e+00;
        q = q * s + 4.763279438e+00;
        q = q * s - 2.973024607e+00;
        q = q * s + 3.571774960e-01;
        q = q * s + 1.663930118e-01;
        q = q * s + 5.773892999e-01;
        q = q * s + 5.633224249e-01;
        q = q * s + 2.505130396e-05;
        return sign(v) * (1.0 - exp(-t) * q);
    }
    return sign(v);
}

// Φ(x), the standard normal CDF.
fn normal_cdf(v: f32) -> f32 {
    return 0.5 * (1.0 + erf_f32(v * FRAC_1_SQRT_2));
}

fn sigmoid(v: f32) -> f32 {
    // exp(−v) overflows to +inf for v < −88: 1/(1 + inf) = 0, the right limit.
    return 1.0 / (1.0 + exp(-v));
}

fn gelu_tanh_inner(v: f32) -> f32 {
    return SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v);
}

@compute @workgroup_size(256)
fn gelu_erf_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        out[i] = v * normal_cdf(v);
    }
}

// d/dx x·Φ(x) = Φ(x) + x·φ(x)
@compute @workgroup_size(256)
fn gelu_erf_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
        out[i] = dy[i] * (normal_cdf(v) + v * pdf);
    }
}

@compute @workgroup_size(256)
fn gelu_tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        out[i] = 0.5 * v * (1.0 + tanh(gelu_tanh_inner(v)));
    }
}

// ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3c·x²), t = tanh(√(2/π)(x + c·x³))
@compute @workgroup_size(256)
fn gelu_tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        let t = tanh(gelu_tanh_inner(v));
        let d = 0.5 * (1.0 + t)
            + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * v * v);
        out[i] = dy[i] * d;
    }
}

@compute @workgroup_size(256)
fn silu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        out[i] = v / (1.0 + exp(-v));
    }
}

// σ(x)·(1 + x·(1 − σ(x)))
@compute @workgroup_size(256)
fn silu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        let s = sigmoid(v);
        out[i] = dy[i] * (s * (1.0 + v * (1.0 - s)));
    }
}

// out[i] = erf(x[i]): lets the tests measure erf_f32 on the adapter itself.
@compute @workgroup_size(256)
fn erf_probe(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = erf_f32(x[i]);
    }
}
