//! A crash dump or flight file carries the resource of the process that
//! wrote it in a header of fixed size: what does not fit is left out entry
//! by entry, never all of it at once.

use spanguard::buffer::dump::DumpHeader;
use spanguard::export::resource::detect;

#[test]
fn a_resource_too_long_for_the_header_keeps_every_entry_that_fits() {
    let mut resource = detect();
    // A path longer than the whole header's resource text, as deep build
    // trees and Nix stores make them, then attributes a user added.
    resource.retain(|(k, _)| k != "process.executable.path");
    resource.push(("process.executable.path".into(), "/nix/".repeat(300)));
    resource.push(("deployment.environment".into(), "prod, eu=west".into()));
    let header = DumpHeader::new(*b"SGDUMP02", 0, "svc", &resource);
    let back = header.resource_attributes();
    let get = |k: &str| {
        back.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("service.instance.id"), Some(resource[0].1.as_str()));
    assert_eq!(
        get("process.pid"),
        Some(std::process::id().to_string().as_str())
    );
    assert!(get("host.name").is_some());
    // Commas and equals signs survive the header's key=value text.
    assert_eq!(get("deployment.environment"), Some("prod, eu=west"));
    assert!(
        back.iter().all(|(_, v)| v.len() < 1024),
        "the long path is left out"
    );
    assert_eq!(header.service_name(), "svc");
}

/// A value that is not ASCII comes back as it was: each byte of "é" came
/// back as a character of its own ("Ã©"), so the spans recovered from a
/// dump of a service in "Zürich" arrived under "ZÃ¼rich".
#[test]
fn a_value_that_is_not_ascii_survives_the_header() {
    let resource = vec![
        (
            "deployment.environment.name".to_string(),
            "Zürich, café=1%".to_string(),
        ),
        ("région".to_string(), "東京".to_string()),
    ];
    let header = DumpHeader::new(*b"SGDUMP02", 0, "sérvice", &resource);
    assert_eq!(header.resource_attributes(), resource);
    assert_eq!(header.service_name(), "sérvice");
}
