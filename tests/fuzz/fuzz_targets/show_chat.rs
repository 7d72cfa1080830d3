//! What `spanguard show` makes of a request body's chats (src/bin/spanguard/
//! chat.rs, compiled in here as it is in the command): prompts and
//! completions on span attributes (indexed, JSON or structured) and the
//! GenAI events sent through the Logs API that the Python and Node log
//! processors put on spans (a message event's body, a details event's
//! chat attributes). Spool and sink files are input from outside: any
//! body, in either format, gzipped or not, is drawn without a panic, and
//! each chat an event gives names one of the event's attributes (the
//! page, html.rs, indexes them by it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::otlp_decode::decode_body;

mod body;

#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/chat.rs"]
mod chat;

use chat::{CallNames, event_chats, gather, split, texts, value_chat};

fuzz_target!(|data: &[u8]| {
    let Some(r) = body::reading(data) else {
        return;
    };
    let Ok(spans) = decode_body(r.body, r.format, r.gzipped) else {
        return;
    };
    let calls = CallNames::of_spans(&spans);
    for span in &spans {
        let _ = texts(&span.attributes, &calls);
        for (key, value) in &span.attributes {
            match split(key) {
                Some((family, _, _)) => {
                    let _ = gather(family, &span.attributes, &calls).text();
                }
                None => {
                    let _ = value_chat(key, value, &calls);
                }
            }
        }
        for event in &span.events {
            for c in event_chats(event, &calls) {
                assert!(
                    c.attribute < event.attributes.len(),
                    "a chat of attribute {} of {}",
                    c.attribute,
                    event.attributes.len()
                );
            }
        }
    }
});
