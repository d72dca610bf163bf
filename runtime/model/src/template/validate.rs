//! Template validation against the installed step types.
//!
//! [`validate_template`] reports every problem at once, each located by a
//! JSON pointer into the template. What passes becomes a
//! [`ValidatedTemplate`]: steps resolved to plugin digests, expressions
//! compiled, the DAG ordered, and input schemas compiled for checking the
//! evaluated inputs at run time.

use super::catalog::{
    CatalogMiss, ResolvedStepType, StepTypeCatalog, TemplateProblem, TemplateProblemCode,
};
use super::dag::Dag;
use super::expr::{CompiledExpr, CompiledValue, ExprSite, VARIABLES, escape_pointer};
use super::spec::{CompensationSpec, StepSpec, WorkflowTemplate};
use crate::ids::StepId;
use crate::json_limits::{JsonLimits, check_json};
use crate::manifest::StepTypeRef;
use jsonschema::error::ValidationErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// How large a template may be. Validation is linear in the template's
/// size, and these bound that size and what a run of it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default, deny_unknown_fields)]
pub struct TemplateLimits {
    /// Steps in one template.
    pub max_steps: usize,
    /// `needs` entries in one template, all steps together.
    pub max_needs: usize,
    /// A step's `retry.maxAttempts`.
    pub max_attempts: u32,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            max_steps: 1_000,
            max_needs: 10_000,
            max_attempts: 100,
        }
    }
}

/// A compiled JSON Schema, shared.
#[derive(Clone)]
struct Schema(Arc<jsonschema::Validator>);

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    /// `(instance pointer, message)` for each violation.
    fn errors(&self, v: &Value) -> Vec<(String, String)> {
        self.0
            .iter_errors(v)
            .map(|e| (e.instance_path().as_str().to_owned(), e.to_string()))
            .collect()
    }
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct ValidatedStep {
    /// The step as written.
    pub spec: StepSpec,
    /// Its position in the template's `steps`.
    pub index: usize,
    /// The step type it runs.
    pub resolved: ResolvedStepType,
    /// `with`, compiled.
    pub with: CompiledValue,
    /// `if`, compiled.
    pub condition: Option<CompiledExpr>,
    /// `forEach`, compiled.
    pub for_each: Option<CompiledExpr>,
    /// `onFailure`, resolved and compiled.
    pub compensation: Option<ValidatedCompensation>,
    input_schema: Schema,
}

/// A validated compensation step.
#[derive(Debug, Clone)]
pub struct ValidatedCompensation {
    /// As written.
    pub spec: CompensationSpec,
    /// The step type it runs.
    pub resolved: ResolvedStepType,
    /// `with`, compiled.
    pub with: CompiledValue,
    input_schema: Schema,
}

/// A template that passed validation. `Send + Sync`; cheap to share in an
/// `Arc`.
#[derive(Debug, Clone)]
pub struct ValidatedTemplate {
    template: WorkflowTemplate,
    dag: Dag,
    /// The dag's order as ids (every id in it passed validation).
    order: Vec<StepId>,
    steps: BTreeMap<String, ValidatedStep>,
    inputs_schema: Option<Schema>,
}

fn schema_messages(errors: Vec<(String, String)>) -> Result<(), Vec<String>> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(errors
        .into_iter()
        .map(|(ptr, msg)| format!("{}: {msg}", if ptr.is_empty() { "/" } else { &ptr }))
        .collect())
}

impl ValidatedTemplate {
    /// The template as written.
    pub fn template(&self) -> &WorkflowTemplate {
        &self.template
    }

    /// The step graph.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// Step ids in topological order.
    pub fn order(&self) -> &[StepId] {
        &self.order
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&ValidatedStep> {
        self.steps.get(id)
    }

    /// Every step, in topological order.
    pub fn steps(&self) -> impl Iterator<Item = &ValidatedStep> {
        self.order()
            .iter()
            .filter_map(|id| self.steps.get(id.as_str()))
    }

    /// Checks a step's evaluated input against its step type's input
    /// schema; each message starts with the pointer into the input.
    pub fn validate_input(&self, step_id: &str, input: &Value) -> Result<(), Vec<String>> {
        let step = self
            .steps
            .get(step_id)
            .ok_or_else(|| vec![format!("no step {step_id:?} in this template")])?;
        schema_messages(step.input_schema.errors(input))
    }

    /// Checks a compensation's evaluated input against its schema.
    pub fn validate_compensation_input(
        &self,
        step_id: &str,
        input: &Value,
    ) -> Result<(), Vec<String>> {
        let comp = self
            .steps
            .get(step_id)
            .and_then(|s| s.compensation.as_ref())
            .ok_or_else(|| vec![format!("step {step_id:?} has no onFailure")])?;
        schema_messages(comp.input_schema.errors(input))
    }

    /// Checks run inputs against the template's `inputs` schema (anything
    /// goes without one). Pointers start with `/inputs`.
    pub fn validate_run_inputs(&self, inputs: &Value) -> Result<(), Vec<TemplateProblem>> {
        let Some(schema) = &self.inputs_schema else {
            return Ok(());
        };
        let problems: Vec<TemplateProblem> = schema
            .errors(inputs)
            .into_iter()
            .map(|(ptr, message)| TemplateProblem {
                pointer: format!("/inputs{ptr}"),
                code: TemplateProblemCode::InputSchemaMismatch,
                message,
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Whether `name` is a valid template name: 1-128 characters of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit.
pub fn is_valid_template_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether `id` is a valid step id: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_step_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

/// Identifiers CEL resolves to types rather than variables.
const TYPE_NAMES: [&str; 12] = [
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "google",
];

struct Problems(Vec<TemplateProblem>);

impl Problems {
    fn push(
        &mut self,
        pointer: impl Into<String>,
        code: TemplateProblemCode,
        message: impl Into<String>,
    ) {
        self.0.push(TemplateProblem {
            pointer: pointer.into(),
            code,
            message: message.into(),
        });
    }

    /// Parses and resolves a `uses`.
    fn resolve(
        &mut self,
        pointer: String,
        uses: &str,
        catalog: &dyn StepTypeCatalog,
    ) -> Option<ResolvedStepType> {
        use TemplateProblemCode as C;
        let r = match StepTypeRef::parse(uses) {
            Ok(r) => r,
            Err(e) => {
                self.push(pointer, C::InvalidUses, e);
                return None;
            }
        };
        let req = r
            .version
            .as_ref()
            .map_or_else(|| "any version".to_owned(), |v| v.to_string());
        match catalog.resolve(&r) {
            Ok(resolved) => Some(resolved),
            Err(CatalogMiss::UnknownPlugin) => {
                self.push(
                    pointer,
                    C::UnknownStepType,
                    format!("no plugin named {:?} is installed", r.plugin),
                );
                None
            }
            Err(CatalogMiss::UnknownStepType { available }) => {
                self.push(
                    pointer,
                    C::UnknownStepType,
                    format!(
                        "plugin {:?} has no step type {:?} (it has: {})",
                        r.plugin,
                        r.step_type,
                        if available.is_empty() {
                            "none".to_owned()
                        } else {
                            available.join(", ")
                        }
                    ),
                );
                None
            }
            Err(CatalogMiss::Disabled) => {
                self.push(
                    pointer,
                    C::StepTypeDisabled,
                    format!(
                        "every installed version of {:?} matching {req} is disabled",
                        r.plugin
                    ),
                );
                None
            }
            Err(CatalogMiss::NoMatchingVersion { available }) => {
                let list: Vec<String> = available.iter().map(ToString::to_string).collect();
                self.push(
                    pointer,
                    C::UnsatisfiableVersion,
                    format!(
                        "no installed version of {:?} satisfies {req} (installed: {})",
                        r.plugin,
                        if list.is_empty() {
                            "none".to_owned()
                        } else {
                            list.join(", ")
                        }
                    ),
                );
                None
            }
        }
    }

    /// Compiles a JSON Schema, reporting `code` when it is not one.
    fn schema(
        &mut self,
        pointer: &str,
        code: TemplateProblemCode,
        what: &str,
        schema: &Value,
    ) -> Option<Schema> {
        if !(schema.is_object() || schema.is_boolean()) {
            self.push(
                pointer,
                code,
                format!("{what} must be a JSON Schema object or boolean"),
            );
            return None;
        }
        if let Err(e) = jsonschema::meta::validate(schema) {
            self.push(
                pointer,
                code,
                format!("{what} is not a valid JSON Schema: {e}"),
            );
            return None;
        }
        match jsonschema::validator_for(schema) {
            Ok(v) => Some(Schema(Arc::new(v))),
            Err(e) => {
                self.push(pointer, code, format!("{what} does not compile: {e}"));
                None
            }
        }
    }

    fn compile_value(&mut self, v: &Value, pointer: &str) -> Option<CompiledValue> {
        match CompiledValue::compile(v, pointer) {
            Ok(c) => Some(c),
            Err(problems) => {
                for p in problems {
                    self.push(p.pointer, TemplateProblemCode::ExpressionSyntax, p.message);
                }
                None
            }
        }
    }

    fn compile_expr(
        &mut self,
        src: Option<&String>,
        pointer: String,
    ) -> Result<Option<CompiledExpr>, ()> {
        match src.map(|s| CompiledExpr::compile(s)) {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => {
                self.push(pointer, TemplateProblemCode::ExpressionSyntax, e.message);
                Err(())
            }
        }
    }

    /// Checks what an expression reads: known variables, `item`/`index`
    /// only where bound, and steps only upstream.
    fn check_refs(&mut self, pointer: &str, expr: &CompiledExpr, scope: &RefScope<'_>) {
        use TemplateProblemCode as C;
        for var in expr.variables() {
            if matches!(var, "item" | "index") && !scope.item_bound {
                self.push(
                    pointer,
                    C::ExpressionSyntax,
                    format!("`{var}` is only bound in the `with` of a step that has `forEach`"),
                );
            } else if !VARIABLES.contains(&var) && !TYPE_NAMES.contains(&var) {
                self.push(
                    pointer,
                    C::ExpressionSyntax,
                    format!(
                        "unknown variable `{var}` in `{}` (known: {})",
                        expr.source(),
                        VARIABLES.join(", ")
                    ),
                );
            }
        }
        if expr.references_all_steps() {
            self.push(
                pointer,
                C::NotUpstream,
                format!(
                    "`{}` uses `steps` without a literal step id; write steps.<id> or steps['<id>'] so the upstream steps are known",
                    expr.source()
                ),
            );
        }
        for r in expr.referenced_steps() {
            if r == scope.step {
                if !scope.self_allowed {
                    self.push(
                        pointer,
                        C::NotUpstream,
                        format!("step {:?} cannot read its own result", r),
                    );
                }
            } else if !scope.all_ids.contains(r.as_str()) {
                self.push(
                    pointer,
                    C::NotUpstream,
                    format!(
                        "`{}` reads steps.{r}, but there is no step {r:?}",
                        expr.source()
                    ),
                );
            } else if !scope.dag.is_upstream(&r, scope.step) {
                self.push(
                    pointer,
                    C::NotUpstream,
                    format!(
                        "`{}` reads steps.{r}, but {r:?} is not upstream of {:?}: add it to `needs`",
                        expr.source(),
                        scope.step
                    ),
                );
            }
        }
    }

    /// Validates the literal parts of a compiled `with` against a schema.
    fn check_input(
        &mut self,
        prefix: &str,
        with: &Value,
        compiled: &CompiledValue,
        schema: &Schema,
    ) {
        let sites: Vec<(&str, &ExprSite)> = compiled
            .sites()
            .iter()
            .map(|s| (s.pointer.strip_prefix(prefix).unwrap_or(&s.pointer), s))
            .collect();
        for error in schema.0.iter_errors(with) {
            let at = error.instance_path().as_str();
            let kind = error.kind();
            if ignorable(at, kind, &sites) {
                continue;
            }
            self.push(
                format!("{prefix}{at}"),
                TemplateProblemCode::InputSchemaMismatch,
                error.to_string(),
            );
        }
    }
}

/// What the expressions of one part of a step may read.
struct RefScope<'a> {
    step: &'a str,
    dag: &'a Dag,
    all_ids: &'a BTreeSet<&'a str>,
    item_bound: bool,
    self_allowed: bool,
}

/// Whether `p` is `ancestor` or below it, as JSON pointers.
fn at_or_below(p: &str, ancestor: &str) -> bool {
    p == ancestor || (p.starts_with(ancestor) && p.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// Whether a schema error in a `with` can be blamed on an expression whose
/// value is only known at run time.
fn ignorable(at: &str, kind: &ValidationErrorKind, sites: &[(&str, &ExprSite)]) -> bool {
    use ValidationErrorKind as K;
    for (ptr, site) in sites {
        if site.whole && at_or_below(at, ptr) {
            return true;
        }
        // An interpolated string is a string whatever the expressions give,
        // so only its type can be checked now.
        if !site.whole && at == *ptr && !matches!(kind, K::Type { .. }) {
            return true;
        }
        if at_or_below(ptr, at) && at != *ptr {
            // The error is on an object or array holding an expression.
            match kind {
                K::Required { property } => {
                    let child = format!("{at}/{}", escape_pointer(property.as_str().unwrap_or("")));
                    if *ptr == child {
                        return true;
                    }
                }
                K::AdditionalProperties { .. }
                | K::MinProperties { .. }
                | K::MaxProperties { .. }
                | K::MinItems { .. }
                | K::MaxItems { .. }
                | K::Type { .. }
                | K::PropertyNames { .. } => {}
                // Combinators, enum/const, uniqueness… depend on the values.
                _ => return true,
            }
        }
    }
    false
}

/// Validates a template against the installed step types, reporting every
/// problem at once.
pub fn validate_template(
    t: &WorkflowTemplate,
    catalog: &dyn StepTypeCatalog,
) -> Result<ValidatedTemplate, Vec<TemplateProblem>> {
    validate_template_with(t, catalog, &TemplateLimits::default())
}

/// [`validate_template`] within `limits`. A template over the step or
/// `needs` limit is refused before anything else is looked at, so the
/// work done on a hostile template stays small.
pub fn validate_template_with(
    t: &WorkflowTemplate,
    catalog: &dyn StepTypeCatalog,
    limits: &TemplateLimits,
) -> Result<ValidatedTemplate, Vec<TemplateProblem>> {
    use TemplateProblemCode as C;
    let mut p = Problems(Vec::new());
    if t.steps.len() > limits.max_steps {
        p.push(
            "/steps",
            C::LimitExceeded,
            format!(
                "the template has {} steps; the limit is {}",
                t.steps.len(),
                limits.max_steps
            ),
        );
    }
    let needs: usize = t.steps.iter().map(|s| s.needs.len()).sum();
    if needs > limits.max_needs {
        p.push(
            "/steps",
            C::LimitExceeded,
            format!(
                "the template has {needs} `needs` entries; the limit is {}",
                limits.max_needs
            ),
        );
    }
    if !p.0.is_empty() {
        return Err(p.0);
    }
    // Literal values are stored with every run: bound their nesting.
    let values = t.inputs.iter().map(|v| ("/inputs".to_owned(), v)).chain(
        t.steps.iter().enumerate().flat_map(|(i, s)| {
            std::iter::once((format!("/steps/{i}/with"), &s.with)).chain(
                s.on_failure
                    .iter()
                    .map(move |c| (format!("/steps/{i}/onFailure/with"), &c.with)),
            )
        }),
    );
    for (ptr, v) in values {
        if let Err(e) = check_json(v, JsonLimits::bytes(usize::MAX)) {
            p.push(ptr, C::LimitExceeded, e.to_string());
        }
    }

    if !is_valid_template_name(&t.name) {
        p.push(
            "/name",
            C::InvalidName,
            format!("template name {:?} must be 1-128 characters of [A-Za-z0-9_.-], starting with a letter or digit", t.name),
        );
    }
    if t.steps.is_empty() {
        p.push("/steps", C::NoSteps, "a template needs at least one step");
    }
    let inputs_schema = t
        .inputs
        .as_ref()
        .and_then(|s| p.schema("/inputs", C::InvalidInputsSchema, "`inputs`", s));
    if let Some(schedule) = &t.schedule {
        if let Err(e) = schedule.parse_cron() {
            p.push("/schedule/cron", C::InvalidCron, e);
        }
        if let Err(e) = schedule.time_zone() {
            p.push("/schedule/timezone", C::InvalidTimezone, e);
        }
    }

    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in t.steps.iter().enumerate() {
        if !is_valid_step_id(&s.id) {
            p.push(
                format!("/steps/{i}/id"),
                C::InvalidStepId,
                format!(
                    "step id {:?} must be 1-64 characters of [A-Za-z0-9_-]",
                    s.id
                ),
            );
        } else if let Some(first) = first_index.get(s.id.as_str()) {
            p.push(
                format!("/steps/{i}/id"),
                C::DuplicateStepId,
                format!("step id {:?} is already used by /steps/{first}", s.id),
            );
        } else {
            first_index.insert(&s.id, i);
        }
    }
    let all_ids: BTreeSet<&str> = t.steps.iter().map(|s| s.id.as_str()).collect();
    let dag = Dag::of_template(t);
    for cycle in dag.cycles() {
        let at = cycle
            .0
            .first()
            .and_then(|id| first_index.get(id.as_str()))
            .copied()
            .unwrap_or(0);
        p.push(
            format!("/steps/{at}/needs"),
            C::Cycle,
            format!("steps need each other: {cycle}"),
        );
    }

    let mut steps = BTreeMap::new();
    for (i, s) in t.steps.iter().enumerate() {
        let base = format!("/steps/{i}");
        for (j, need) in s.needs.iter().enumerate() {
            if !all_ids.contains(need.as_str()) {
                p.push(
                    format!("{base}/needs/{j}"),
                    C::UnknownNeeds,
                    format!("step {:?} needs {need:?}, which does not exist", s.id),
                );
            }
        }
        let resolved = p.resolve(format!("{base}/uses"), &s.uses, catalog);
        let with = p.compile_value(&s.with, &format!("{base}/with"));
        let condition = p.compile_expr(s.condition.as_ref(), format!("{base}/if"));
        let for_each = p.compile_expr(s.for_each.as_ref(), format!("{base}/forEach"));
        if let Some(retry) = &s.retry {
            for (ptr, msg) in retry.problems() {
                p.push(format!("{base}/retry{ptr}"), C::InvalidRetry, msg);
            }
            if retry.max_attempts > limits.max_attempts {
                p.push(
                    format!("{base}/retry/maxAttempts"),
                    C::LimitExceeded,
                    format!(
                        "maxAttempts {} is over the limit of {}",
                        retry.max_attempts, limits.max_attempts
                    ),
                );
            }
        }
        let compensation = s.on_failure.as_ref().map(|c| {
            let resolved = p.resolve(format!("{base}/onFailure/uses"), &c.uses, catalog);
            let with = p.compile_value(&c.with, &format!("{base}/onFailure/with"));
            (c, resolved, with)
        });

        // References, checked wherever the expressions compiled.
        let scope = |item_bound, self_allowed| RefScope {
            step: &s.id,
            dag: &dag,
            all_ids: &all_ids,
            item_bound,
            self_allowed,
        };
        if let Some(w) = &with {
            let sc = scope(s.for_each.is_some(), false);
            for (ptr, e) in w.expressions() {
                p.check_refs(ptr, e, &sc);
            }
        }
        if let Ok(Some(e)) = &condition {
            p.check_refs(&format!("{base}/if"), e, &scope(false, false));
        }
        if let Ok(Some(e)) = &for_each {
            p.check_refs(&format!("{base}/forEach"), e, &scope(false, false));
        }
        if let Some((_, _, Some(w))) = &compensation {
            let sc = scope(false, true);
            for (ptr, e) in w.expressions() {
                p.check_refs(ptr, e, &sc);
            }
        }

        // Input schemas, for the literal parts now and whole inputs later.
        let input_schema = match (&resolved, &with) {
            (Some(r), Some(w)) => {
                let schema = p.schema(
                    &format!("{base}/uses"),
                    C::InputSchemaMismatch,
                    "the step type's input schema",
                    &r.input_schema,
                );
                if let Some(schema) = &schema {
                    p.check_input(&format!("{base}/with"), &s.with, w, schema);
                }
                schema
            }
            _ => None,
        };
        let compensation = match compensation {
            None => Ok(None),
            Some((spec, Some(resolved), Some(with))) => {
                let ptr = format!("{base}/onFailure");
                match p.schema(
                    &format!("{ptr}/uses"),
                    C::InputSchemaMismatch,
                    "the step type's input schema",
                    &resolved.input_schema,
                ) {
                    Some(schema) => {
                        p.check_input(&format!("{ptr}/with"), &spec.with, &with, &schema);
                        Ok(Some(ValidatedCompensation {
                            spec: spec.clone(),
                            resolved,
                            with,
                            input_schema: schema,
                        }))
                    }
                    None => Err(()),
                }
            }
            Some(_) => Err(()),
        };

        if let (
            Some(resolved),
            Some(with),
            Ok(condition),
            Ok(for_each),
            Ok(compensation),
            Some(input_schema),
        ) = (
            resolved,
            with,
            condition,
            for_each,
            compensation,
            input_schema,
        ) && first_index.get(s.id.as_str()) == Some(&i)
        {
            steps.insert(
                s.id.clone(),
                ValidatedStep {
                    spec: s.clone(),
                    index: i,
                    resolved,
                    with,
                    condition,
                    for_each,
                    compensation,
                    input_schema,
                },
            );
        }
    }

    if p.0.is_empty() {
        // No id is dropped: an invalid one was a problem above.
        let order = dag
            .order()
            .iter()
            .filter_map(|id| StepId::new(id.as_str()).ok())
            .collect();
        Ok(ValidatedTemplate {
            template: t.clone(),
            dag,
            order,
            steps,
            inputs_schema,
        })
    } else {
        Err(p.0)
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
