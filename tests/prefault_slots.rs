//! `TracerConfig::prefault_slots` (SPANGUARD_PREFAULT_SLOTS): the slab is
//! populated whole when the tracer starts, and only then.

mod support;

use spanguard::config::TracerConfig;

#[test]
fn prefaulted_slots_are_all_resident_from_the_start() {
    let (t, dir) = support::discarding_tracer_with(
        "prefault",
        TracerConfig {
            prefault_slots: true,
            ..TracerConfig::default()
        },
    );
    let slab = &t.pipeline().slab;
    assert_eq!(slab.used_slots(), slab.capacity(), "populated at start");
    let (plain, plain_dir) =
        support::discarding_tracer_with("no-prefault", TracerConfig::default());
    assert_eq!(
        plain.pipeline().slab.used_slots(),
        0,
        "by default, as first used"
    );
    drop((t, plain));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(plain_dir);
}
