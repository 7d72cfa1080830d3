//! A tracer disabled by OTEL_SDK_DISABLED=true records nothing: a variable
//! inherited from a shell or a CI template made every span vanish with
//! nothing said. It writes one line on stderr when made. The tracer is made
//! in a copy of this test binary, whose stderr is read.

use spanguard::ffi::tracer::{spanguard_tracer_free, spanguard_tracer_new_from_env};

const CHILD: &str = "SPANGUARD_TEST_DISABLED_CHILD";

/// The stderr of this test run alone in a copy of this binary with `env`.
fn stderr_of_a_child(env: &[(&str, &str)]) -> String {
    let mut run = std::process::Command::new(std::env::current_exe().expect("this test binary"));
    run.args(["--exact", "a_disabled_tracer_says_so", "--test-threads=1"]);
    run.env(CHILD, "1").env_remove("OTEL_LOG_LEVEL");
    for (k, v) in env {
        run.env(k, v);
    }
    let out = run.output().expect("the copy starts");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}{err}");
    assert!(
        text.contains("1 passed"),
        "the child did not run: {text}{err}"
    );
    err
}

#[test]
fn a_disabled_tracer_says_so() {
    if std::env::var_os(CHILD).is_some() {
        let mut t = std::ptr::null_mut();
        // SAFETY: a NULL config takes the defaults; `t` is written on success.
        let code = unsafe { spanguard_tracer_new_from_env(std::ptr::null(), &mut t) };
        assert_eq!(code as u32, 0);
        // SAFETY: made above, freed once.
        unsafe { spanguard_tracer_free(t) };
        return;
    }
    let said = stderr_of_a_child(&[("OTEL_SDK_DISABLED", "true")]);
    assert_eq!(
        said.matches(
            "spanguard: warn: OTEL_SDK_DISABLED=true: this tracer records and sends nothing"
        )
        .count(),
        1,
        "{said}"
    );
    assert!(said.contains("unset the variable to record"), "{said}");
    // OTEL_LOG_LEVEL=error silences it, as every warning.
    let quiet = stderr_of_a_child(&[("OTEL_SDK_DISABLED", "true"), ("OTEL_LOG_LEVEL", "error")]);
    assert!(!quiet.contains("OTEL_SDK_DISABLED"), "{quiet}");
}
