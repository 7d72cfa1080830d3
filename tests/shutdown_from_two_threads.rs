//! Two shutdowns at once (a signal's flush beside the program's own close,
//! an exit hook beside the watchdog): the second returns only once the
//! first has exported everything, open spans included, so a program that
//! exits when its own call returns loses nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::Parent;

#[test]
fn the_second_shutdown_waits_for_the_first() {
    // A backend that takes 300 ms a request and says when one came: the
    // first shutdown is exporting when the second is called. (A sleep of
    // 50 ms stood for "the first has begun"; on a loaded machine its
    // thread had not, the second call was the first, and it succeeded.)
    // The schedule delay of a minute leaves the sending to the shutdown.
    let (came, requests) = std::sync::mpsc::sync_channel(16);
    let (url, _closed) = support::slow_backend(Duration::from_millis(300), move |_| {
        let _ = came.try_send(());
    });
    let (tracer, dir) = support::tracer_to(
        "two-shutdowns",
        &url,
        TracerConfig {
            schedule_delay: Duration::from_secs(60),
            ..TracerConfig::default()
        },
    );
    let tracer = Arc::new(tracer);
    let (ended, _) = tracer.begin(b"ended", Parent::None, 1).expect("begin");
    tracer.end(ended, 0).expect("end");
    let _open = tracer.begin(b"open", Parent::None, 1).expect("begin");
    let first = {
        let tracer = Arc::clone(&tracer);
        std::thread::spawn(move || tracer.shutdown(Duration::from_secs(30)))
    };
    requests
        .recv_timeout(Duration::from_secs(30))
        .expect("the first shutdown's request");
    assert!(
        tracer.shutdown(Duration::from_secs(30)).is_err(),
        "shut down already"
    );
    let stats = tracer.stats();
    assert_eq!(stats.spans_unended_at_shutdown, 1, "{stats:?}");
    assert_eq!(
        stats.spans_exported, 2,
        "returned before the export: {stats:?}"
    );
    first.join().expect("thread").expect("the first shutdown");
    let _ = std::fs::remove_dir_all(dir);
}
