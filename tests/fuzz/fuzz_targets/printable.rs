//! The escaping rule every message and the CLI use (`span::printable`),
//! on any bytes cut anywhere: nothing that drives a terminal comes out,
//! nothing hidden but where real text has it (a joiner between visible
//! characters, one selector after one, a recommended flag's tags), every
//! character is there as itself or its escape, shown text is shown again
//! unchanged, and a cut is bounded and counts exactly what it left out.
//! The checks are the unit test's (src/span/printable_check.rs, compiled
//! in here as it is), written from the Unicode standard, not from the
//! rule's code.
#![no_main]

use libfuzzer_sys::fuzz_target;
// `printable_check` reaches the rule as `super::printable`.
use spanguard::span::printable;

#[path = "../../../src/span/printable_check.rs"]
mod printable_check;

fuzz_target!(|data: &[u8]| {
    // The first byte says where to cut; the rest is the text.
    let Some((&cut, text)) = data.split_first() else {
        return;
    };
    printable_check::check_one(text, usize::from(cut));
    // The HTML page's reading: the same, but its line breaks and tabs.
    let text = String::from_utf8_lossy(text);
    let page = printable::printable_with_line_breaks(&text);
    let without_breaks: Vec<&str> = page.split(['\n', '\t']).collect();
    for piece in &without_breaks {
        printable_check::check_shown(piece, &format!("{text:?} on the page"));
    }
    assert_eq!(
        page.replace('\n', "\\n").replace('\t', "\\t"),
        printable::printable(&text),
        "{text:?}"
    );
});
