// The sampler tables. Each case follows the diffusers scheduler named by sampler_reference():
// its set_timesteps (timestep spacing, sigmas interpolated from alphas_cumprod, the final
// sigma 0), scale_model_input and step, rewritten as the linear update of kernels/sampler.h.
#include "compiler/schedule.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "compiler/error.h"
#include "kernels/sampler.h"
#include "schema/plan_types.h"

namespace kiln {

Sampler parse_sampler(const std::string& n) {
  if (n == "ddim") return Sampler::kDdim;
  if (n == "euler") return Sampler::kEuler;
  if (n == "euler_a" || n == "euler_ancestral") return Sampler::kEulerAncestral;
  if (n == "dpmpp_2m" || n == "dpm++2m") return Sampler::kDpmpp2m;
  if (n == "vp_sde") return Sampler::kVpSde;
  if (n == "pf_ode") return Sampler::kPfOde;
  throw CompileError("--sampler '" + n + "' is not one of ddim, euler, euler_a, dpmpp_2m, vp_sde, pf_ode");
}

const char* sampler_name(Sampler s) {
  switch (s) {
    case Sampler::kDdim:
      return "ddim";
    case Sampler::kEuler:
      return "euler";
    case Sampler::kEulerAncestral:
      return "euler_a";
    case Sampler::kDpmpp2m:
      return "dpmpp_2m";
    case Sampler::kVpSde:
      return "vp_sde";
    case Sampler::kPfOde:
      return "pf_ode";
  }
  return "?";
}

const char* sampler_reference(Sampler s) {
  switch (s) {
    case Sampler::kDdim:
      return "DDIMScheduler (eta 0)";
    case Sampler::kEuler:
      return "EulerDiscreteScheduler";
    case Sampler::kEulerAncestral:
      return "EulerAncestralDiscreteScheduler";
    case Sampler::kDpmpp2m:
      return "DPMSolverMultistepScheduler (dpmsolver++, order 2)";
    case Sampler::kVpSde:
      return "ScoreSdeVpScheduler (Euler-Maruyama)";
    case Sampler::kPfOde:
      return "the probability-flow ODE of ScoreSdeVpScheduler's SDE (Euler)";
  }
  return "?";
}

SchedulerConfig pipeline_scheduler(SchedulerConfig c, bool sd_pipeline, const std::string& pipeline_class, Sampler s) {
  const char* cls = s == Sampler::kDdim             ? "DDIMScheduler"
                    : s == Sampler::kEuler          ? "EulerDiscreteScheduler"
                    : s == Sampler::kEulerAncestral ? "EulerAncestralDiscreteScheduler"
                    : s == Sampler::kDpmpp2m        ? "DPMSolverMultistepScheduler"
                    : s == Sampler::kVpSde          ? "ScoreSdeVpScheduler"
                                                    : "";
  const bool same = pipeline_class == cls;  // (absent keys: the class's defaults, then rewritten)
  if (sd_pipeline && (c.steps_offset_given || same)) c.steps_offset = 1;
  if (sd_pipeline && (c.clip_sample_given || same)) c.clip_sample = false;
  return c;
}

std::vector<float> alphas_cumprod(const SchedulerConfig& c) {
  const int64_t T = c.num_train_timesteps;
  std::vector<float> betas(static_cast<size_t>(T));
  if (!c.trained_betas.empty()) {
    for (int64_t i = 0; i < T; ++i) betas[size_t(i)] = float(c.trained_betas[size_t(i)]);
  } else if (c.beta_schedule == "squaredcos_cap_v2") {
    auto abar = [](double t) {
      const double v = std::cos((t + 0.008) / 1.008 * M_PI / 2);
      return v * v;
    };
    for (int64_t i = 0; i < T; ++i)
      betas[size_t(i)] = float(std::min(1 - abar(double(i + 1) / double(T)) / abar(double(i) / double(T)), 0.999));
  } else {
    const bool scaled = c.beta_schedule == "scaled_linear";
    const double a = scaled ? std::sqrt(c.beta_start) : c.beta_start, b = scaled ? std::sqrt(c.beta_end) : c.beta_end;
    for (int64_t i = 0; i < T; ++i) {
      // torch.linspace in f32: start + i·step in the first half, end − (T−1−i)·step in the second.
      const float fa = float(a), fb = float(b);
      const float step = T > 1 ? (fb - fa) / float(T - 1) : 0.0f;
      const float v = i < T / 2 ? fa + step * float(i) : fb - step * float(T - 1 - i);
      betas[size_t(i)] = scaled ? v * v : v;
    }
  }
  // torch.cumprod on the CPU accumulates f32 inputs in double and rounds each output.
  std::vector<float> ac(static_cast<size_t>(T));
  double p = 1.0;
  for (int64_t i = 0; i < T; ++i) ac[size_t(i)] = float(p *= double(1.0f - betas[size_t(i)]));
  return ac;
}

namespace {

using Row = std::array<double, kSamplerCoefs>;

// np.interp(t, arange(n), sigmas) with sigmas = sqrt((1 − ᾱ) / ᾱ) in f32.
double interp_sigma(const std::vector<float>& ac, double t) {
  auto sig = [&](int64_t i) { return double(std::sqrt((1.0f - ac[size_t(i)]) / ac[size_t(i)])); };
  const int64_t n = int64_t(ac.size());
  if (t <= 0) return sig(0);
  if (t >= double(n - 1)) return sig(n - 1);
  const int64_t i = int64_t(std::floor(t));
  const double f = t - double(i);
  return sig(i) + f * (sig(i + 1) - sig(i));
}

// Timesteps, largest first, as diffusers' set_timesteps spaces them. `plus_one` is DPM-Solver's
// variant (N + 1 points, the last dropped).
std::vector<double> spaced_timesteps(const std::string& spacing, int64_t T, int64_t N, int64_t offset, bool integer,
                                     bool plus_one) {
  std::vector<double> ts;
  if (spacing == "linspace") {
    const int64_t n = plus_one ? N + 1 : N;
    const double step = n > 1 ? double(T - 1) / double(n - 1) : 0.0;  // np.linspace: i·step, the end exact
    for (int64_t i = 0; i < n; ++i) {
      double v = i == n - 1 && n > 1 ? double(T - 1) : double(i) * step;
      if (integer) v = std::nearbyint(v);  // np.round: half to even
      else v = double(float(v));
      ts.push_back(v);
    }
    std::reverse(ts.begin(), ts.end());
    if (plus_one) ts.pop_back();
  } else if (spacing == "leading") {
    const int64_t n = plus_one ? N + 1 : N;
    const int64_t ratio = T / n;
    for (int64_t i = n - 1; i >= 0; --i) ts.push_back(double(i * ratio + offset));
    if (plus_one) ts.pop_back();
  } else {  // trailing
    // np.round(np.arange(T, 0, -T/N)) - 1. For some N (61, 103, 121, ... at T = 1000) arange's
    // length, ceil(T / (T/N)) in floating point, comes out N + 1, the last point -1, and diffusers
    // then runs an extra step at t = -1; kiln keeps the N steps asked for.
    const double ratio = double(T) / double(N);
    for (double v = double(T); v > 0; v -= ratio) ts.push_back(std::nearbyint(v) - 1);
    ts.resize(size_t(N));
  }
  return ts;
}

}  // namespace

Schedule build_schedule(const SchedulerConfig& c, Sampler s, int64_t N) {
  if (N <= 0 || N > kMaxDiffusionSteps)
    throw CompileError("--steps must be between 1 and " + std::to_string(kMaxDiffusionSteps));
  const int64_t T = c.num_train_timesteps;
  if (N > T && s != Sampler::kVpSde && s != Sampler::kPfOde)
    throw CompileError("--steps " + std::to_string(N) + " exceeds the scheduler's num_train_timesteps " +
                       std::to_string(T));
  const std::vector<float> ac = alphas_cumprod(c);
  const bool vpred = c.prediction_type == "v_prediction";
  Schedule out;
  std::vector<Row> rows;
  auto finish = [&](std::vector<double> ts) {
    for (double t : ts) out.timesteps.push_back(float(t));
    for (const Row& r : rows)
      for (double v : r) {
        if (!std::isfinite(float(v)))
          throw CompileError(std::string("the ") + sampler_name(s) + " schedule for " + std::to_string(N) +
                             " steps is degenerate (repeated timesteps give non-finite coefficients); use fewer steps");
        out.coefs.push_back(float(v));
      }
    if (out.timesteps.size() != size_t(N) || out.coefs.size() != size_t(N * kSamplerCoefs))
      throw CompileError("internal: schedule has the wrong length");
    return out;
  };

  const std::string file = c.path.empty() ? std::string("scheduler_config.json") : c.path;  // (for messages)
  switch (s) {
    case Sampler::kDdim: {
      if (c.clip_sample)
        throw CompileError(
            file +
            ": clip_sample is true (as the file gives it to a ControlNet pipeline, or DDIMScheduler's default for a file "
            "without it whose pipeline has another scheduler class); "
            "kiln's DDIM does not clip x0");
      out.spacing = c.timestep_spacing.empty() ? "leading" : c.timestep_spacing;
      const std::vector<double> ts = spaced_timesteps(out.spacing, T, N, c.steps_offset, true, false);
      const double final_ac = c.set_alpha_to_one ? 1.0 : double(ac[0]);
      for (double t : ts) {
        if (t < 0 || t >= double(T)) throw CompileError("a DDIM timestep falls outside the training schedule");
        const int64_t ti = int64_t(t), prev = ti - T / N;
        const double at = ac[size_t(ti)], ap = prev >= 0 ? double(ac[size_t(prev)]) : final_ac;
        const double sa = std::sqrt(at), sb = std::sqrt(1 - at), pa = std::sqrt(ap), pb = std::sqrt(1 - ap);
        // x0 = px·x + pm·m, eps = ex·x + em·m; x' = √ᾱ_prev·x0 + √(1−ᾱ_prev)·eps
        double px, pm, ex, em;
        if (vpred) {
          px = sa;
          pm = -sb;
          ex = sb;
          em = sa;
        } else {
          px = 1 / sa;
          pm = -sb / sa;
          ex = 0;
          em = 1;
        }
        rows.push_back(Row{pa * px + pb * ex, pa * pm + pb * em, 0, 0, 0, 0, 1.0});
      }
      return finish(ts);
    }
    case Sampler::kEuler:
    case Sampler::kEulerAncestral: {
      out.spacing = c.timestep_spacing.empty() ? "linspace" : c.timestep_spacing;
      const std::vector<double> ts = spaced_timesteps(out.spacing, T, N, c.steps_offset, false, false);
      for (double t : ts) out.sigmas.push_back(double(float(interp_sigma(ac, t))));
      out.sigmas.push_back(0.0);
      const double smax = *std::max_element(out.sigmas.begin(), out.sigmas.end());
      out.init_noise_sigma =
          (out.spacing == "linspace" || out.spacing == "trailing") ? smax : std::sqrt(smax * smax + 1);
      out.stochastic = s == Sampler::kEulerAncestral;
      for (int64_t i = 0; i < N; ++i) {
        const double sg = out.sigmas[size_t(i)], sn = out.sigmas[size_t(i + 1)];
        double dt = sn - sg, up = 0;
        if (s == Sampler::kEulerAncestral) {
          up = std::sqrt(sn * sn * (sg * sg - sn * sn) / (sg * sg));
          dt = std::sqrt(sn * sn - up * up) - sg;
        }
        // denoised = p·x + q·m; d = (x − denoised)/σ; x' = x + dt·d + up·z
        const double p = vpred ? 1 / (sg * sg + 1) : 1.0, q = vpred ? -sg / std::sqrt(sg * sg + 1) : -sg;
        rows.push_back(Row{1 + dt * (1 - p) / sg, -dt * q / sg, 0, up, 0, 0, 1 / std::sqrt(sg * sg + 1)});
      }
      return finish(ts);
    }
    case Sampler::kDpmpp2m: {
      if (!c.dpm_changed.empty()) {
        std::string keys;
        for (const std::string& k : c.dpm_changed) keys += (keys.empty() ? "" : ", ") + k;
        throw CompileError(file + ": " + keys +
                           ": --sampler dpmpp_2m runs DPMSolverMultistepScheduler with its defaults (dpmsolver++, "
                           "order 2), and diffusers' from_config would pass " +
                           (c.dpm_changed.size() > 1 ? "these" : "this") + " on to it");
      }
      out.spacing = c.timestep_spacing.empty() ? "linspace" : c.timestep_spacing;
      const std::vector<double> ts = spaced_timesteps(out.spacing, T, N, c.steps_offset, true, true);
      for (double t : ts) out.sigmas.push_back(double(float(interp_sigma(ac, t))));
      out.sigmas.push_back(0.0);  // final_sigmas_type "zero"
      out.uses_history = true;
      auto alpha = [](double sg) { return 1 / std::sqrt(sg * sg + 1); };
      auto lambda = [&](double sg) { return std::log(alpha(sg)) - std::log(sg * alpha(sg)); };
      for (int64_t i = 0; i < N; ++i) {
        const double ss = out.sigmas[size_t(i)], st = out.sigmas[size_t(i + 1)];
        const double as = alpha(ss), ss_t = ss * as;  // alpha_s, sigma_s
        // x0 = p·x + q·m (dpmsolver++ data prediction)
        const double p = vpred ? as : 1 / as, q = vpred ? -ss_t : -ss_t / as;
        double R, E;  // x' = R·x + E·D, D = x0 (first order) or the midpoint combination
        if (st == 0) {
          R = 0;
          E = 1;
        } else {
          const double at = alpha(st), h = lambda(st) - lambda(ss);
          R = (st * at) / ss_t;
          E = -at * std::expm1(-h);
        }
        const bool first = i == 0 || i == N - 1;  // warm-up step, and lower_order_final (final sigma 0)
        if (first) {
          rows.push_back(Row{R + E * p, E * q, 0, 0, p, q, 1.0});
        } else {
          const double h = st == 0 ? INFINITY : lambda(st) - lambda(ss);
          const double h0 = lambda(ss) - lambda(out.sigmas[size_t(i - 1)]);
          const double r0 = h0 / h;
          // x' = R·x + E·D0 + c1·D1 with D1 = (m0 − m1)/r0; c1 = E/2 (midpoint) or α_t·(expm1(−h)/h + 1) (heun)
          const double c1 = c.dpm_heun ? alpha(st) * (std::expm1(-h) / h + 1) : 0.5 * E;
          const double E2 = E + c1 / r0;
          rows.push_back(Row{R + E2 * p, E2 * q, -c1 / r0, 0, p, q, 1.0});
        }
      }
      return finish(ts);
    }
    case Sampler::kVpSde:
    case Sampler::kPfOde: {
      out.spacing = "continuous";
      double bmin = c.sde_beta_min, bmax = c.sde_beta_max;
      if (c.prediction_type != "epsilon")
        throw CompileError(std::string("--sampler ") + sampler_name(s) +
                           " needs an epsilon-prediction model (this one predicts " + c.prediction_type + ")");
      if (c.class_name != "ScoreSdeVpScheduler" && (c.beta_schedule != "linear" || !c.trained_betas.empty()))
        throw CompileError(std::string("--sampler ") + sampler_name(s) +
                           " needs a linear beta schedule (its continuous "
                           "VP-SDE limit); this pipeline's is " +
                           (c.trained_betas.empty() ? c.beta_schedule : "trained_betas"));
      if (c.class_name != "ScoreSdeVpScheduler") {  // a discrete linear DDPM schedule: its continuous-time limit
        bmin = c.beta_start * double(T);
        bmax = c.beta_end * double(T);
      }
      out.stochastic = s == Sampler::kVpSde;
      std::vector<double> ts;
      const double dt = -1.0 / double(N);
      for (int64_t i = 0; i < N; ++i) {
        // torch.linspace(1, sampling_eps, N) in f32
        const float t = N > 1 ? float(1.0 + (c.sde_sampling_eps - 1.0) * double(i) / double(N - 1)) : 1.0f;
        const double tt = t;
        ts.push_back(tt * double(T - 1));  // the UNet's discrete-time label
        const double lmc = -0.25 * tt * tt * (bmax - bmin) - 0.5 * tt * bmin;
        const double std_ = std::sqrt(-std::expm1(2 * lmc));
        const double beta = bmin + tt * (bmax - bmin);
        // score = −m/std; drift = −½β·x − g·β·score with g = 1 (SDE) or ½ (ODE)
        const double g = s == Sampler::kVpSde ? 1.0 : 0.5;
        const double noise = s == Sampler::kVpSde && i < N - 1 ? std::sqrt(beta * -dt) : 0.0;  // last step: the mean
        rows.push_back(Row{1 - 0.5 * beta * dt, g * beta * dt / std_, 0, noise, 0, 0, 1.0});
      }
      return finish(ts);
    }
  }
  throw CompileError("internal: unknown sampler");
}

}  // namespace kiln
