//! Cron schedules: a template with `schedule` starts runs on time,
//! exactly once cluster-wide.
//!
//! Each firing is claimed in the store (`schedule_fire:[template, time]`)
//! and the run is started with the idempotency key
//! `schedule:<template>:<time>`, so several nodes (or a restart in the
//! middle of a firing) never start it twice. Firings missed while no node
//! was running are not back-filled.

use crate::{Engine, StartRunRequest};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use weft_model::TemplateId;
use weft_model::template::WorkflowTemplate;

/// How often templates are re-read to notice new or changed schedules.
const RESCAN: Duration = Duration::from_secs(1);

pub(crate) fn spawn(engine: Engine) {
    tokio::spawn(async move {
        // Per template: the instant up to which firings were handled.
        let mut handled: HashMap<TemplateId, DateTime<Utc>> = HashMap::new();
        while !engine.shared.is_stopping() {
            let now = Utc::now();
            let mut wake = now + chrono::Duration::from_std(RESCAN).unwrap_or_default();
            match engine.shared.store.templates().await {
                Ok(templates) => {
                    for t in templates {
                        let Ok(template) = WorkflowTemplate::from_value(&t.body) else {
                            continue;
                        };
                        let Some(schedule) = template.schedule else {
                            continue;
                        };
                        let (Ok(cron), Ok(tz)) = (schedule.parse_cron(), schedule.time_zone())
                        else {
                            continue;
                        };
                        let since = *handled.entry(t.template_id.clone()).or_insert(now);
                        let mut cursor = since.with_timezone(&tz);
                        while let Ok(next) = cron.find_next_occurrence(&cursor, false) {
                            let next_utc = next.with_timezone(&Utc);
                            if next_utc > now || engine.shared.is_stopping() {
                                wake = wake.min(next_utc);
                                break;
                            }
                            fire(&engine, &t.template_id, next_utc).await;
                            cursor = next;
                        }
                        handled.insert(t.template_id.clone(), now);
                    }
                }
                Err(e) => tracing::error!("scheduler cannot read templates: {e}"),
            }
            let delay = (wake - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(delay).await;
        }
    });
}

async fn fire(engine: &Engine, template_id: &TemplateId, at: DateTime<Utc>) {
    let ms = at.timestamp_millis();
    match engine
        .shared
        .store
        .claim_schedule_fire(template_id, ms)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(template_id = %template_id, "cannot claim schedule firing: {e}");
            return;
        }
    }
    let req = StartRunRequest {
        template: template_id.to_string(),
        inputs: serde_json::json!({}),
        idempotency_key: Some(format!("schedule:{template_id}:{ms}")),
    };
    match engine.start_run(weft_model::Principal::system(), req).await {
        Ok(run) => {
            tracing::info!(template_id = %template_id, run = %run.run_id, "scheduled run started")
        }
        Err(e) => tracing::error!(template_id = %template_id, "scheduled run could not start: {e}"),
    }
}
