//! Head sampling, as OpenTelemetry's SDK specification defines its built-in
//! samplers: `always_on`, `always_off`, `traceidratio`, and their
//! parent-based forms, which follow the parent's sampled flag and ask the
//! root sampler only for root spans. The decision is made once, at begin;
//! an unsampled span still has ids and propagates its context (flag 00).

use super::traceparent::FLAG_SAMPLED;

/// What decides a root span (or every span, when not parent-based).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// Samples a trace when its id is below this fraction of the id space:
    /// every participant with the same ratio decides a trace alike.
    TraceIdRatio(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    pub root: RootSampler,
    /// Spans with a parent take the parent's decision (remote or local).
    pub parent_based: bool,
}

impl Default for Sampler {
    /// `parentbased_always_on`, the specification's default.
    fn default() -> Self {
        Sampler {
            root: RootSampler::AlwaysOn,
            parent_based: true,
        }
    }
}

impl Sampler {
    /// Whether a span of `trace_id` is sampled, given its parent's trace
    /// flags (None for a root span).
    #[inline]
    pub fn sampled(&self, trace_id: &[u8; 16], parent_flags: Option<u8>) -> bool {
        if self.parent_based
            && let Some(flags) = parent_flags
        {
            return flags & FLAG_SAMPLED != 0;
        }
        match self.root {
            RootSampler::AlwaysOn => true,
            RootSampler::AlwaysOff => false,
            RootSampler::TraceIdRatio(ratio) => trace_id_below(trace_id, ratio),
        }
    }

    /// The specification's description string (`ParentBased{root=...}`),
    /// for diagnostics.
    pub fn describe(&self) -> String {
        let root = match self.root {
            RootSampler::AlwaysOn => "AlwaysOnSampler".to_string(),
            RootSampler::AlwaysOff => "AlwaysOffSampler".to_string(),
            RootSampler::TraceIdRatio(r) => format!("TraceIdRatioBased{{{r}}}"),
        };
        if self.parent_based {
            format!("ParentBased{{root={root}}}")
        } else {
            root
        }
    }

    /// Parses `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`. A ratio
    /// sampler without an argument samples everything (the specification's
    /// default ratio is 1.0).
    pub fn from_names(name: &str, arg: Option<&str>) -> Result<Sampler, String> {
        let ratio = || -> Result<f64, String> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(a) => match a.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(format!(
                        "OTEL_TRACES_SAMPLER_ARG={a}: not a probability between 0 and 1"
                    )),
                },
            }
        };
        // Any case, as the SDK configuration spec reads enum values.
        let (root, parent_based) = match name.trim().to_ascii_lowercase().as_str() {
            "always_on" => (RootSampler::AlwaysOn, false),
            "always_off" => (RootSampler::AlwaysOff, false),
            "traceidratio" => (RootSampler::TraceIdRatio(ratio()?), false),
            "parentbased_always_on" => (RootSampler::AlwaysOn, true),
            "parentbased_always_off" => (RootSampler::AlwaysOff, true),
            "parentbased_traceidratio" => (RootSampler::TraceIdRatio(ratio()?), true),
            _ => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER={}: not always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
                    name.trim()
                ));
            }
        };
        Ok(Sampler { root, parent_based })
    }
}

/// The TraceIdRatioBased rule of the Go and Java SDKs: the trace id's
/// right-most 8 bytes, less their top bit, against `ratio` times 2^63. Those
/// bytes are the random ones (W3C Level 2), so the ratio holds for ids made
/// by any conforming tracer.
fn trace_id_below(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let low = u64::from_be_bytes(trace_id[8..16].try_into().expect("8 bytes")) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    low < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low: u64) -> [u8; 16] {
        let mut t = [0u8; 16];
        t[0] = 0xab;
        t[8..].copy_from_slice(&low.to_be_bytes());
        t
    }

    #[test]
    fn parent_based_rules_follow_the_parent_exactly() {
        for root in [
            RootSampler::AlwaysOn,
            RootSampler::AlwaysOff,
            RootSampler::TraceIdRatio(0.5),
        ] {
            let s = Sampler {
                root,
                parent_based: true,
            };
            for low in [0, u64::MAX] {
                assert!(s.sampled(&id(low), Some(0x01)), "sampled parent, {root:?}");
                assert!(s.sampled(&id(low), Some(0x03)));
                assert!(
                    !s.sampled(&id(low), Some(0x00)),
                    "unsampled parent, {root:?}"
                );
                assert!(!s.sampled(&id(low), Some(0x02)));
            }
        }
        let on = Sampler {
            root: RootSampler::AlwaysOn,
            parent_based: true,
        };
        let off = Sampler {
            root: RootSampler::AlwaysOff,
            parent_based: true,
        };
        assert!(on.sampled(&id(5), None) && !off.sampled(&id(5), None));
        // Not parent-based: the parent does not matter.
        let always_off = Sampler {
            root: RootSampler::AlwaysOff,
            parent_based: false,
        };
        assert!(!always_off.sampled(&id(5), Some(0x01)));
        let always_on = Sampler {
            root: RootSampler::AlwaysOn,
            parent_based: false,
        };
        assert!(always_on.sampled(&id(5), Some(0x00)));
    }

    #[test]
    fn the_ratio_is_a_threshold_on_the_low_bytes() {
        let half = Sampler {
            root: RootSampler::TraceIdRatio(0.5),
            parent_based: false,
        };
        assert!(half.sampled(&id(0), None));
        assert!(half.sampled(&id((1 << 63) - 2), None));
        assert!(!half.sampled(&id(1 << 63), None));
        assert!(!half.sampled(&id(u64::MAX), None));
        let none = Sampler {
            root: RootSampler::TraceIdRatio(0.0),
            parent_based: false,
        };
        assert!(!none.sampled(&id(0), None));
    }

    #[test]
    fn the_ratio_holds_statistically_for_random_ids() {
        // 20,000 ids from the tracer's own generator: the sampled share of
        // a 0.25 ratio is within 5 standard deviations (about 1.5%).
        let s = Sampler {
            root: RootSampler::TraceIdRatio(0.25),
            parent_based: true,
        };
        let n = 20_000;
        let hits = (0..n)
            .filter(|_| s.sampled(&crate::span::ids::new_root_ids().0, None))
            .count();
        let share = hits as f64 / n as f64;
        let sigma = (0.25f64 * 0.75 / n as f64).sqrt();
        assert!((share - 0.25).abs() < 5.0 * sigma, "share {share}");
    }

    #[test]
    fn names_and_arguments_are_the_specifications() {
        assert_eq!(
            Sampler::from_names("parentbased_always_on", None),
            Ok(Sampler::default())
        );
        assert_eq!(
            Sampler::from_names("traceidratio", Some("0.1")),
            Ok(Sampler {
                root: RootSampler::TraceIdRatio(0.1),
                parent_based: false
            })
        );
        assert_eq!(
            Sampler::from_names("parentbased_traceidratio", None),
            Ok(Sampler {
                root: RootSampler::TraceIdRatio(1.0),
                parent_based: true
            })
        );
        let e = Sampler::from_names("traceidratio", Some("1.5")).unwrap_err();
        assert!(e.contains("OTEL_TRACES_SAMPLER_ARG=1.5"), "{e}");
        let e = Sampler::from_names("jaeger_remote", None).unwrap_err();
        assert!(e.contains("OTEL_TRACES_SAMPLER=jaeger_remote"), "{e}");
        assert_eq!(
            Sampler::default().describe(),
            "ParentBased{root=AlwaysOnSampler}"
        );
    }
}
