//! Weft's REST types, in one place for the server and the CLI: request
//! bodies ([`requests`]), the objects endpoints return ([`views`]), and the
//! envelope and error shape around them ([`envelope`]).
//!
//! Each type derives poem-openapi's `Object` (what the server validates
//! and documents) and serde (what the CLI decodes), with the same names;
//! a test checks that the two agree. Statuses, kinds and levels are the
//! domain's own enums from `weft-model`.

pub mod envelope;
pub mod requests;
pub mod strict;
pub mod sync;
pub mod views;

pub use envelope::{Envelope, ErrorBody, ErrorDetail, Meta, Pagination, ValidationError};
pub use requests::{AnswerBody, DirectoryGrantBody, EnablePluginRequest, StartRunBody};
pub use strict::{JsonObject, Maybe, Text};
pub use views::{
    ArtifactView, AttemptView, CapabilitiesView, EventView, LogView, PluginHealthView, PluginView,
    ProgressView, RunView, StepTypeView, StepView, TemplateRevisionView, TemplateView,
    ValidationView,
};

/// Formats Unix milliseconds as RFC 3339 with milliseconds, UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod agree_tests;
