//! `pipelines` and `promotions`: apps in stages, and carrying a build down them without a
//! rebuild, behind another person's approval where a stage is protected.

use anyhow::{anyhow, bail};
use api_types::{AddPipelineApp, Promote, Promotion, StageGatesPatch};

use super::{Context, outcome};
use crate::cli::{PipelinesCommand, PromotionsCommand, StageGateArgs};
use crate::client::Client;
use crate::output::{self, print_json};

pub(crate) async fn run(ctx: &Context, command: PipelinesCommand) -> anyhow::Result<()> {
    match command {
        PipelinesCommand::List => {
            let pipelines = ctx.client()?.pipelines().await?;
            if ctx.json {
                return print_json(&pipelines);
            }
            output::print(&output::pipelines_table(&pipelines))?;
        }
        PipelinesCommand::Create { name } => {
            let pipeline = ctx.client()?.create_pipeline(&name).await?;
            if ctx.json {
                return print_json(&pipeline);
            }
            ctx.say(format_args!(
                "Creating pipeline {name}... done; add apps with `slip pipelines:add {name} -a APP --stage staging`"
            ))?;
        }
        PipelinesCommand::Add { pipeline, stage } => {
            let (client, app) = ctx.client_and_app()?;
            let add = AddPipelineApp {
                app: app.clone(),
                stage: stage.clone(),
            };
            let info = client.add_to_pipeline(&pipeline, &add).await?;
            if ctx.json {
                return print_json(&info);
            }
            ctx.say(format_args!(
                "Adding {app} to pipeline {pipeline} as {stage}... done"
            ))?;
        }
        PipelinesCommand::Info { pipeline } => {
            let client = ctx.client()?;
            let name = pipeline_of(ctx, &client, pipeline).await?;
            let pipeline = client.pipeline(&name).await?;
            if ctx.json {
                return print_json(&pipeline);
            }
            output::print(&output::pipeline_info(&pipeline))?;
        }
        PipelinesCommand::Remove => {
            let (client, app) = ctx.client_and_app()?;
            let pipeline = pipeline_of(ctx, &client, None).await?;
            client.remove_from_pipeline(&pipeline, &app).await?;
            ctx.say(format_args!(
                "Removing {app} from pipeline {pipeline}... done"
            ))?;
        }
        PipelinesCommand::Destroy { pipeline, confirm } => {
            match confirm {
                Some(c) if c == pipeline => {}
                Some(c) => bail!(
                    "--confirm {c} does not match the pipeline {pipeline}; nothing was destroyed"
                ),
                None => bail!(
                    "destroying pipeline {pipeline} takes its apps out of it (they stay) and forgets its promotions; to go ahead, run `slip pipelines:destroy {pipeline} --confirm {pipeline}`"
                ),
            }
            ctx.client()?.destroy_pipeline(&pipeline).await?;
            ctx.say(format_args!("Destroying pipeline {pipeline}... done"))?;
        }
        PipelinesCommand::Protect(args) => gate(ctx, args, Gate::Protected).await?,
        PipelinesCommand::AutoPromote(args) => gate(ctx, args, Gate::AutoPromote).await?,
        PipelinesCommand::Promote { to } => promote(ctx, to).await?,
    }
    Ok(())
}

pub(crate) async fn promotions(ctx: &Context, command: PromotionsCommand) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let (number, approve) = match command {
        PromotionsCommand::List { pipeline } => {
            let name = pipeline_of(ctx, &client, pipeline).await?;
            let promotions = client.promotions(&name).await?;
            if ctx.json {
                return print_json(&promotions);
            }
            output::print(&output::promotions_table(&promotions))?;
            return Ok(());
        }
        PromotionsCommand::Approve { number } => (number, true),
        PromotionsCommand::Reject { number } => (number, false),
    };
    let decision = if approve { "approve" } else { "reject" };
    let promotion = client.decide_promotion(number, decision).await?;
    if ctx.json {
        return print_json(&promotion);
    }
    let what = describe(&promotion);
    match promotion.release {
        Some(v) if approve => {
            let release = client.release(&promotion.target_app, v).await?.release;
            let outcome = outcome(&client, &promotion.target_app, &release).await?;
            ctx.say(format_args!(
                "Approving promotion #{number} ({what})... {outcome}"
            ))?;
        }
        _ => ctx.say(format_args!(
            "Rejecting promotion #{number} ({what})... done"
        ))?,
    }
    Ok(())
}

/// `slip pipelines:promote`: each target's release followed until it is deployed, or the
/// pending promotion's number to approve.
async fn promote(ctx: &Context, to: Vec<String>) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let promotions = client.promote(&app, &Promote { to }).await?;
    if ctx.json {
        return print_json(&promotions);
    }
    for promotion in &promotions {
        let what = describe(promotion);
        match promotion.release {
            Some(v) => {
                let release = client.release(&promotion.target_app, v).await?.release;
                let outcome = outcome(&client, &promotion.target_app, &release).await?;
                ctx.say(format_args!("Promoting {what}... {outcome}"))?;
            }
            None => ctx.say(format_args!(
                "{} is protected: promotion #{} ({what}) waits for another collaborator's approval (`slip promotions:approve {}`)",
                promotion.target_app, promotion.number, promotion.number
            ))?,
        }
    }
    Ok(())
}

fn describe(promotion: &Promotion) -> String {
    format!(
        "{} v{} to {}",
        promotion.source_app, promotion.source_version, promotion.target_app
    )
}

#[derive(Clone, Copy)]
enum Gate {
    Protected,
    AutoPromote,
}

async fn gate(ctx: &Context, args: StageGateArgs, gate: Gate) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let pipeline = pipeline_of(ctx, &client, args.pipeline).await?;
    let on = !args.off;
    let patch = match gate {
        Gate::Protected => StageGatesPatch {
            protected: Some(on),
            auto_promote: None,
        },
        Gate::AutoPromote => StageGatesPatch {
            protected: None,
            auto_promote: Some(on),
        },
    };
    let info = client
        .set_stage_gates(&pipeline, &args.stage, &patch)
        .await?;
    if ctx.json {
        return print_json(&info);
    }
    let what = match (gate, on) {
        (Gate::Protected, true) => "promotions to it now wait for another collaborator's approval",
        (Gate::Protected, false) => "promotions to it deploy at once",
        (Gate::AutoPromote, true) => {
            "a successful deploy in it now promotes onward by itself (unless the next stage is protected)"
        }
        (Gate::AutoPromote, false) => "deploys in it are promoted only when asked",
    };
    ctx.say(format_args!("{pipeline} {}: {what}", args.stage))?;
    Ok(())
}

/// The pipeline named, or else the one the app (`-a`, or the git remote's) is in.
async fn pipeline_of(
    ctx: &Context,
    client: &Client,
    named: Option<String>,
) -> anyhow::Result<String> {
    if let Some(name) = named {
        return Ok(name);
    }
    let app = ctx.app().map_err(|_| {
        anyhow!("no pipeline given: name one, use -a APP, or run inside an app's git repository")
    })?;
    for summary in client.pipelines().await? {
        let pipeline = client.pipeline(&summary.name).await?;
        if pipeline
            .stages
            .iter()
            .any(|s| s.apps.iter().any(|a| a.name == app))
        {
            return Ok(summary.name);
        }
    }
    bail!(
        "{app} is in no pipeline: name one, or add it with `slip pipelines:add PIPELINE -a {app} --stage STAGE`"
    )
}
