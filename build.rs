// Gives the shared library a deliberate SONAME, so programs linked against
// libspanguard.so.0 keep loading it across compatible releases.
fn main() {
    // Without a rerun-if-changed line cargo runs this script again, and so
    // compiles the crate again, whenever any file in the package changes:
    // an untracked log in the checkout (`make test > LOG`) made each of
    // make test's cargo builds compile spanguard anew.
    println!("cargo:rerun-if-changed=build.rs");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libspanguard.so.{major}");
    // Never unloaded by dlclose (a plugin host's, after its plugin's
    // tracer shut down, or while it runs): the library's signal handlers,
    // its watchdog and exporter threads and its exit hook point into its
    // code for the rest of the process. Unloaded, a running tracer's
    // exporter went on in unmapped code (SIGSEGV at the dlclose, its
    // spans left for the next start), and the next SIGTERM or crash would
    // jump there (tests/c/test_two_copies.c). What libraries that install
    // signal handlers do; musl never unloads anything.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
