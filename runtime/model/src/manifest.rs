//! Plugin manifests: what `describe()` returned, validated.
//!
//! The host converts the WIT `manifest` record into a [`RawManifest`]
//! (strings as the plugin sent them) and calls [`RawManifest::validate`],
//! which reports every problem at once, each with a JSON pointer.

use crate::capabilities::{HostPattern, RequestedCapabilities};
use crate::connector::{
    BatchFormat, DestinationSpec, RawDestinationSpec, RawSourceSpec, SourceSpec,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// A manifest exactly as a plugin's `describe()` returned it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawManifest {
    /// Plugin name.
    pub name: String,
    /// Version text (should be semver).
    pub version: String,
    /// Description.
    pub description: String,
    /// Step types with schemas as JSON text.
    pub step_types: Vec<RawStepType>,
    /// What `source.spec()` returned, for a source.
    pub source: Option<RawSourceSpec>,
    /// What `destination.spec()` returned, for a destination.
    pub destination: Option<RawDestinationSpec>,
    /// Requested outbound host patterns, as text.
    pub outbound_hosts: Vec<String>,
    /// Requested preopened directories.
    pub directories: Vec<String>,
    /// Requested environment variable names.
    pub env: Vec<String>,
    /// Requested secret names.
    pub secrets: Vec<String>,
}

/// A step type exactly as a plugin described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawStepType {
    /// Name within the plugin.
    pub name: String,
    /// Description.
    pub description: String,
    /// Input JSON Schema text.
    pub input_schema: String,
    /// Output JSON Schema text.
    pub output_schema: String,
}

/// Which roles a component plays, detected from its exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRoles {
    /// Exports `step`.
    pub step: bool,
    /// Exports `source`.
    pub source: bool,
    /// Exports `destination`.
    pub destination: bool,
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginManifest {
    /// Plugin name; the prefix of its step types (`core/fibo`).
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// Description.
    pub description: String,
    /// Roles detected from the component's exports.
    pub roles: PluginRoles,
    /// Step types provided.
    pub step_types: Vec<StepTypeInfo>,
    /// Source spec, for source connectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Destination spec, for destination connectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationSpec>,
    /// Requested capabilities.
    pub requested: RequestedCapabilities,
}

impl PluginManifest {
    /// Looks up a step type by its name within the plugin.
    pub fn step_type(&self, name: &str) -> Option<&StepTypeInfo> {
        self.step_types.iter().find(|s| s.name == name)
    }
}

/// One validated step type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTypeInfo {
    /// Name within the plugin.
    pub name: String,
    /// Description.
    pub description: String,
    /// Input JSON Schema.
    pub input_schema: serde_json::Value,
    /// Output JSON Schema.
    pub output_schema: serde_json::Value,
}

/// What is wrong with a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ManifestProblemCode {
    /// Plugin or step-type name breaks the naming rule.
    InvalidName,
    /// Version is not semver.
    InvalidVersion,
    /// A schema is not JSON.
    InvalidJson,
    /// A schema is JSON but not a valid JSON Schema.
    InvalidJsonSchema,
    /// Two step types share a name.
    DuplicateStepType,
    /// A requested host pattern is malformed.
    InvalidHostPattern,
    /// Exports and manifest disagree (e.g. step types without `step`).
    RoleMismatch,
    /// The manifest's text in all is over [`MAX_MANIFEST_BYTES`].
    ManifestTooLarge,
    /// More than [`MAX_STEP_TYPES`] step types.
    TooManyStepTypes,
    /// A requested-capability or secret-field list is over [`MAX_LIST_ENTRIES`].
    TooManyEntries,
    /// One JSON Schema's text is over [`MAX_SCHEMA_BYTES`].
    SchemaTooLarge,
    /// A connector spec breaks a rule of the contract (no Arrow IPC among
    /// its formats, no write modes).
    InvalidConnectorSpec,
}

// Every `GET /plugins` and `/step-types` serves manifests, and every
// template validation walks their step types: a plugin must not be able to
// make those arbitrarily expensive by describing itself at length.

/// Largest manifest accepted: the bytes of all its text (names,
/// descriptions, schemas, requested capabilities) together.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Most step types one plugin may declare.
pub const MAX_STEP_TYPES: usize = 256;
/// Largest single JSON Schema (input, output or connector config), as text.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
/// Most entries in each requested-capability list (hosts, directories,
/// env, secrets) and in a connector's secret fields.
pub const MAX_LIST_ENTRIES: usize = 256;

/// One problem in a manifest, located by a JSON pointer into the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestProblem {
    /// JSON pointer, e.g. `/stepTypes/1/inputSchema`.
    pub pointer: String,
    /// Machine-readable code.
    pub code: ManifestProblemCode,
    /// Human-readable explanation.
    pub message: String,
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.pointer.is_empty() {
                "/"
            } else {
                &self.pointer
            },
            self.message
        )
    }
}

/// Whether `name` follows the naming rule for plugins and step types:
/// a lower-case letter, then up to 62 lower-case letters, digits or `-`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

struct Problems(Vec<ManifestProblem>);

impl Problems {
    fn push(
        &mut self,
        pointer: impl Into<String>,
        code: ManifestProblemCode,
        message: impl Into<String>,
    ) {
        self.0.push(ManifestProblem {
            pointer: pointer.into(),
            code,
            message: message.into(),
        });
    }

    /// Checks what a role's `spec()` returned against whether the component exports the role.
    fn role_spec<R>(&mut self, pointer: &str, spec: Option<R>, exported: bool) -> Option<R> {
        match (spec, exported) {
            (Some(spec), true) => Some(spec),
            (None, false) => None,
            (Some(_), false) => {
                self.push(
                    pointer,
                    ManifestProblemCode::RoleMismatch,
                    format!(
                        "a {} spec is given but the component does not export it",
                        &pointer[1..]
                    ),
                );
                None
            }
            (None, true) => {
                self.push(
                    pointer,
                    ManifestProblemCode::RoleMismatch,
                    format!(
                        "the component exports `{}` but gives no spec",
                        &pointer[1..]
                    ),
                );
                None
            }
        }
    }

    fn formats(&mut self, pointer: &str, formats: &[BatchFormat]) {
        if !formats.contains(&BatchFormat::ArrowIpc) {
            self.push(
                format!("{pointer}/formats"),
                ManifestProblemCode::InvalidConnectorSpec,
                "the formats must include arrow-ipc, the format every connector speaks",
            );
        }
        if formats.len() > MAX_LIST_ENTRIES {
            self.push(
                format!("{pointer}/formats"),
                ManifestProblemCode::TooManyEntries,
                format!(
                    "{} entries; at most {MAX_LIST_ENTRIES} are accepted",
                    formats.len()
                ),
            );
        }
    }

    fn source_spec(&mut self, raw: Option<RawSourceSpec>, exported: bool) -> Option<SourceSpec> {
        let raw = self.role_spec("/source", raw, exported)?;
        self.formats("/source", &raw.formats);
        let config_schema = self.schema("/source/configSchema".into(), &raw.config_schema)?;
        Some(SourceSpec {
            config_schema,
            secret_fields: raw.secret_fields,
            formats: raw.formats,
        })
    }

    fn destination_spec(
        &mut self,
        raw: Option<RawDestinationSpec>,
        exported: bool,
    ) -> Option<DestinationSpec> {
        let raw = self.role_spec("/destination", raw, exported)?;
        self.formats("/destination", &raw.formats);
        if raw.write_modes.is_empty() {
            self.push(
                "/destination/writeModes",
                ManifestProblemCode::InvalidConnectorSpec,
                "a destination supports at least one write mode",
            );
        }
        let config_schema = self.schema("/destination/configSchema".into(), &raw.config_schema)?;
        Some(DestinationSpec {
            config_schema,
            secret_fields: raw.secret_fields,
            formats: raw.formats,
            write_modes: raw.write_modes,
            delivery: raw.delivery,
        })
    }

    fn schema(&mut self, pointer: String, text: &str) -> Option<serde_json::Value> {
        if text.len() > MAX_SCHEMA_BYTES {
            self.push(
                pointer,
                ManifestProblemCode::SchemaTooLarge,
                format!(
                    "the schema is {} bytes; at most {MAX_SCHEMA_BYTES} are accepted",
                    text.len()
                ),
            );
            return None;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.push(
                    pointer,
                    ManifestProblemCode::InvalidJson,
                    format!("not JSON: {e}"),
                );
                return None;
            }
        };
        if !(value.is_object() || value.is_boolean()) {
            self.push(
                pointer,
                ManifestProblemCode::InvalidJsonSchema,
                "a JSON Schema must be an object or a boolean",
            );
            return None;
        }
        if let Err(e) = jsonschema::meta::validate(&value) {
            self.push(
                pointer,
                ManifestProblemCode::InvalidJsonSchema,
                format!("not a valid JSON Schema: {e}"),
            );
            return None;
        }
        if let Err(e) = jsonschema::validator_for(&value) {
            self.push(
                pointer,
                ManifestProblemCode::InvalidJsonSchema,
                format!("JSON Schema does not compile: {e}"),
            );
            return None;
        }
        Some(value)
    }
}

fn list_bytes(items: &[String]) -> usize {
    items.iter().map(String::len).sum()
}

impl RawManifest {
    /// The bytes of all the manifest's text together.
    pub fn text_bytes(&self) -> usize {
        let steps: usize = self
            .step_types
            .iter()
            .map(|s| {
                s.name.len() + s.description.len() + s.input_schema.len() + s.output_schema.len()
            })
            .sum();
        let formats = |f: &[BatchFormat]| f.iter().map(|f| f.name().len()).sum::<usize>();
        let connector = self.source.as_ref().map_or(0, |c| {
            c.config_schema.len() + list_bytes(&c.secret_fields) + formats(&c.formats)
        }) + self.destination.as_ref().map_or(0, |c| {
            c.config_schema.len() + list_bytes(&c.secret_fields) + formats(&c.formats)
        });
        self.name.len()
            + self.version.len()
            + self.description.len()
            + steps
            + connector
            + list_bytes(&self.outbound_hosts)
            + list_bytes(&self.directories)
            + list_bytes(&self.env)
            + list_bytes(&self.secrets)
    }

    /// Refuses a manifest too big to be worth validating further: over
    /// [`MAX_MANIFEST_BYTES`] or [`MAX_STEP_TYPES`], nothing else is looked at.
    fn check_size(&self) -> Result<(), Vec<ManifestProblem>> {
        let mut p = Problems(Vec::new());
        let bytes = self.text_bytes();
        if bytes > MAX_MANIFEST_BYTES {
            p.push(
                "",
                ManifestProblemCode::ManifestTooLarge,
                format!("the manifest is {bytes} bytes; at most {MAX_MANIFEST_BYTES} are accepted"),
            );
        }
        if self.step_types.len() > MAX_STEP_TYPES {
            p.push(
                "/stepTypes",
                ManifestProblemCode::TooManyStepTypes,
                format!(
                    "{} step types are declared; at most {MAX_STEP_TYPES} are accepted",
                    self.step_types.len()
                ),
            );
        }
        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }

    /// Validates the manifest against the roles detected from the
    /// component's exports, reporting every problem at once.
    pub fn validate(self, roles: PluginRoles) -> Result<PluginManifest, Vec<ManifestProblem>> {
        use ManifestProblemCode as C;
        self.check_size()?;
        let mut p = Problems(Vec::new());
        let source_secrets = self.source.as_ref().map(|c| c.secret_fields.as_slice());
        let destination_secrets = self
            .destination
            .as_ref()
            .map(|c| c.secret_fields.as_slice());
        for (pointer, list) in [
            (
                "/requested/outboundHosts",
                Some(self.outbound_hosts.as_slice()),
            ),
            ("/requested/directories", Some(self.directories.as_slice())),
            ("/requested/env", Some(self.env.as_slice())),
            ("/requested/secrets", Some(self.secrets.as_slice())),
            ("/source/secretFields", source_secrets),
            ("/destination/secretFields", destination_secrets),
        ] {
            let n = list.map_or(0, <[String]>::len);
            if n > MAX_LIST_ENTRIES {
                p.push(
                    pointer,
                    C::TooManyEntries,
                    format!("{n} entries; at most {MAX_LIST_ENTRIES} are accepted"),
                );
            }
        }

        if !is_valid_name(&self.name) {
            p.push(
                "/name",
                C::InvalidName,
                format!(
                    "plugin name {:?} must match [a-z][a-z0-9-]{{0,62}}",
                    self.name
                ),
            );
        }
        let version = match semver::Version::parse(self.version.trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                p.push(
                    "/version",
                    C::InvalidVersion,
                    format!("version {:?} is not semver: {e}", self.version),
                );
                None
            }
        };

        let mut seen = HashSet::new();
        let mut step_types = Vec::with_capacity(self.step_types.len());
        for (i, st) in self.step_types.into_iter().enumerate() {
            if !is_valid_name(&st.name) {
                p.push(
                    format!("/stepTypes/{i}/name"),
                    C::InvalidName,
                    format!(
                        "step type name {:?} must match [a-z][a-z0-9-]{{0,62}}",
                        st.name
                    ),
                );
            } else if !seen.insert(st.name.clone()) {
                p.push(
                    format!("/stepTypes/{i}/name"),
                    C::DuplicateStepType,
                    format!("step type {:?} is declared more than once", st.name),
                );
            }
            let input = p.schema(format!("/stepTypes/{i}/inputSchema"), &st.input_schema);
            let output = p.schema(format!("/stepTypes/{i}/outputSchema"), &st.output_schema);
            if let (Some(input_schema), Some(output_schema)) = (input, output) {
                step_types.push(StepTypeInfo {
                    name: st.name,
                    description: st.description,
                    input_schema,
                    output_schema,
                });
            }
        }
        if roles.step && seen.is_empty() {
            p.push(
                "/stepTypes",
                C::RoleMismatch,
                "the component exports `step` but declares no step types",
            );
        }
        if !roles.step && !seen.is_empty() {
            p.push(
                "/stepTypes",
                C::RoleMismatch,
                "step types are declared but the component does not export `step`",
            );
        }

        let source = p.source_spec(self.source, roles.source);
        let destination = p.destination_spec(self.destination, roles.destination);

        let mut outbound_hosts = Vec::new();
        for (i, h) in self.outbound_hosts.iter().enumerate() {
            match HostPattern::parse(h) {
                Ok(pat) => outbound_hosts.push(pat),
                Err(e) => p.push(
                    format!("/requested/outboundHosts/{i}"),
                    C::InvalidHostPattern,
                    e.to_string(),
                ),
            }
        }

        match (p.0.is_empty(), version) {
            (true, Some(version)) => Ok(PluginManifest {
                name: self.name,
                version,
                description: self.description,
                roles,
                step_types,
                source,
                destination,
                requested: RequestedCapabilities {
                    outbound_hosts,
                    directories: self.directories,
                    env: self.env,
                    secrets: self.secrets,
                },
            }),
            _ => Err(p.0),
        }
    }
}

/// A reference to a step type from a template: `plugin/step-type` with an
/// optional semver requirement, e.g. `core/fibo@^0.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTypeRef {
    /// Plugin name.
    pub plugin: String,
    /// Step type name within the plugin.
    pub step_type: String,
    /// Version requirement; any version when absent.
    pub version: Option<semver::VersionReq>,
}

impl StepTypeRef {
    /// Parses `plugin/step-type[@requirement]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (path, req) = match s.split_once('@') {
            Some((path, req)) => (path, Some(req)),
            None => (s, None),
        };
        let (plugin, step_type) = path.split_once('/').ok_or_else(|| {
            format!("{s:?} must look like `plugin/step-type` or `plugin/step-type@^1.2`")
        })?;
        if !is_valid_name(plugin) || !is_valid_name(step_type) {
            return Err(format!(
                "{s:?}: plugin and step-type names must match [a-z][a-z0-9-]{{0,62}}"
            ));
        }
        let version = req
            .map(|r| {
                semver::VersionReq::parse(r)
                    .map_err(|e| format!("{s:?}: bad version requirement: {e}"))
            })
            .transpose()?;
        Ok(Self {
            plugin: plugin.to_owned(),
            step_type: step_type.to_owned(),
            version,
        })
    }
}

impl fmt::Display for StepTypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.plugin, self.step_type)?;
        if let Some(v) = &self.version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn raw() -> RawManifest {
        RawManifest {
            name: "core".into(),
            version: "0.1.0".into(),
            description: "d".into(),
            step_types: vec![RawStepType {
                name: "noop".into(),
                description: "n".into(),
                input_schema: "{}".into(),
                output_schema: "true".into(),
            }],
            outbound_hosts: vec!["*".into()],
            ..Default::default()
        }
    }

    const STEP: PluginRoles = PluginRoles {
        step: true,
        source: false,
        destination: false,
    };

    #[test]
    fn a_good_manifest_validates() {
        let m = raw().validate(STEP).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(m.version, semver::Version::new(0, 1, 0));
        assert!(m.step_type("noop").is_some());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut m = raw();
        m.name = "Core!".into();
        m.version = "one.two".into();
        m.step_types.push(RawStepType {
            name: "noop".into(),
            input_schema: r#"{"type": 12}"#.into(),
            output_schema: "nope".into(),
            ..Default::default()
        });
        m.outbound_hosts.push("http://x/".into());
        let problems = m.validate(STEP).err().unwrap_or_default();
        let codes: Vec<_> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), p.code))
            .collect();
        use ManifestProblemCode as C;
        assert!(codes.contains(&("/name", C::InvalidName)), "{problems:?}");
        assert!(
            codes.contains(&("/version", C::InvalidVersion)),
            "{problems:?}"
        );
        assert!(
            codes.contains(&("/stepTypes/1/name", C::DuplicateStepType)),
            "{problems:?}"
        );
        assert!(
            codes.contains(&("/stepTypes/1/inputSchema", C::InvalidJsonSchema)),
            "{problems:?}"
        );
        assert!(
            codes.contains(&("/stepTypes/1/outputSchema", C::InvalidJson)),
            "{problems:?}"
        );
        assert!(
            codes.contains(&("/requested/outboundHosts/1", C::InvalidHostPattern)),
            "{problems:?}"
        );
    }

    #[test]
    fn oversized_manifests_are_refused_before_anything_is_parsed() {
        use ManifestProblemCode as C;
        let codes = |m: RawManifest| -> Vec<(String, ManifestProblemCode)> {
            m.validate(STEP)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.pointer, p.code))
                .collect()
        };

        // Tens of thousands of step types: one problem, not one per step.
        let mut many = raw();
        many.step_types = (0..20_000)
            .map(|i| RawStepType {
                name: format!("s{i}"),
                input_schema: "not json".into(),
                output_schema: "{}".into(),
                ..Default::default()
            })
            .collect();
        assert_eq!(
            codes(many),
            [("/stepTypes".to_owned(), C::TooManyStepTypes)]
        );
        let mut limit = raw();
        limit.step_types = (0..MAX_STEP_TYPES)
            .map(|i| RawStepType {
                name: format!("s{i}"),
                input_schema: "{}".into(),
                output_schema: "{}".into(),
                ..Default::default()
            })
            .collect();
        assert!(limit.validate(STEP).is_ok(), "exactly the limit is fine");

        // A 20 MB description.
        let mut big = raw();
        big.description = "x".repeat(20 << 20);
        assert_eq!(codes(big), [(String::new(), C::ManifestTooLarge)]);

        // One schema over its own limit (the manifest as a whole is not).
        let mut schema = raw();
        schema.step_types[0].input_schema =
            format!(r#"{{"description": "{}"}}"#, "x".repeat(MAX_SCHEMA_BYTES));
        assert_eq!(
            codes(schema),
            [("/stepTypes/0/inputSchema".to_owned(), C::SchemaTooLarge)]
        );

        // Too many requested secrets.
        let mut lists = raw();
        lists.secrets = (0..=MAX_LIST_ENTRIES).map(|i| format!("S{i}")).collect();
        assert_eq!(
            codes(lists),
            [("/requested/secrets".to_owned(), C::TooManyEntries)]
        );
    }

    #[test]
    fn roles_must_match_exports() {
        let problems = raw()
            .validate(PluginRoles::default())
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, ManifestProblemCode::RoleMismatch);
    }

    #[test]
    fn connector_specs_are_checked_against_exports_and_the_contract() {
        use crate::connector::{Delivery, WriteMode};
        let roles = PluginRoles {
            step: false,
            source: true,
            destination: true,
        };
        let mut m = raw();
        m.step_types.clear();
        m.source = Some(RawSourceSpec {
            config_schema: r#"{"type":"object"}"#.into(),
            secret_fields: vec!["token".into()],
            formats: vec![BatchFormat::Other("ndjson".into()), BatchFormat::ArrowIpc],
        });
        m.destination = Some(RawDestinationSpec {
            config_schema: r#"{"type":"object"}"#.into(),
            secret_fields: vec![],
            formats: vec![BatchFormat::ArrowIpc],
            write_modes: vec![WriteMode::Append],
            delivery: Delivery::ExactlyOnce,
        });
        let ok = m.clone().validate(roles).unwrap();
        assert_eq!(ok.source.unwrap().secret_fields, ["token"]);
        assert_eq!(ok.destination.unwrap().delivery, Delivery::ExactlyOnce);

        let mut bad = m.clone();
        if let Some(d) = bad.destination.as_mut() {
            d.formats = vec![BatchFormat::Other("csv".into())];
            d.write_modes.clear();
        }
        let problems = bad.validate(roles).err().unwrap_or_default();
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/destination/formats", "/destination/writeModes"]
        );

        let only_source = PluginRoles {
            destination: false,
            ..roles
        };
        let problems = m.validate(only_source).err().unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pointer, "/destination");
        assert_eq!(problems[0].code, ManifestProblemCode::RoleMismatch);
    }

    #[test]
    fn step_type_refs_parse() {
        let r = StepTypeRef::parse("core/fibo@^0.1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.plugin.as_str(), r.step_type.as_str()), ("core", "fibo"));
        assert!(
            r.version
                .is_some_and(|v| v.matches(&semver::Version::new(0, 1, 5)))
        );
        assert!(StepTypeRef::parse("core").is_err());
        assert!(StepTypeRef::parse("core/fibo@banana").is_err());
        assert_eq!(
            StepTypeRef::parse("a/b").map(|r| r.to_string()),
            Ok("a/b".to_owned())
        );
    }
}
