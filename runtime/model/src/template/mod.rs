//! Workflow templates: the schema users write (JSON or YAML), CEL
//! expressions, the step DAG and validation against installed step types.
//!
//! ```text
//! text ──parse──▶ WorkflowTemplate ──validate_template(catalog)──▶ ValidatedTemplate
//!                                                                 (resolved, compiled, ordered)
//! ```

pub mod budget;
pub mod catalog;
mod cel_json;
pub mod dag;
pub mod duration;
pub mod expr;
pub mod retry;
pub mod revision;
pub mod spec;
pub mod validate;
mod value;

pub use budget::{BudgetLimit, ExprBudget, MAX_EXPRESSION_BYTES, MAX_EXPRESSION_NESTING};
pub use catalog::{
    CatalogMiss, ResolvedStepType, StepTypeCatalog, TemplateProblem, TemplateProblemCode,
};
pub use dag::{Cycle, Dag};
pub use duration::{DurationParseError, DurationSpec};
pub use expr::{
    CompiledExpr, CompiledValue, ExprContext, ExprError, ExprProblem, ExprSyntaxError,
    StepResultView, VARIABLES,
};
pub use retry::{Backoff, BackoffKind, RetryOn, RetryPolicy};
pub use revision::{TemplateHead, TemplateRevision};
pub use spec::{
    CompensationSpec, ScheduleSpec, StepSpec, TemplateFormat, TemplateParseError, WorkflowTemplate,
};
pub use validate::{
    TemplateLimits, ValidatedCompensation, ValidatedStep, ValidatedTemplate, is_valid_step_id,
    is_valid_template_name, validate_template, validate_template_with,
};
