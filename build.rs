// Gives the shared library a deliberate SONAME, so programs linked against
// libspanguard.so.0 keep loading it across compatible releases.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libspanguard.so.{major}");
}
