#!/usr/bin/env bash
# Deploy LaxAI Train to Google Cloud, as in the seed:
#   ./deploy.sh            # everything: infrastructure, service and worker
#   ./deploy.sh main       # the service (REST API, Slack bot, dispatcher, notifier) and its wiring
#   ./deploy.sh worker     # the GPU training worker (Cloud Run Job)
#   ./deploy.sh [...] --dry-run   # print every gcloud command instead of running it
# Settings come from config/cloud-config.env; the environment overrides the file.
set -euo pipefail
cd "$(dirname "$0")"

component=all
dry_run=false
for arg in "$@"; do
  case "$arg" in
    all|main|worker) component="$arg" ;;
    --dry-run) dry_run=true ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (use: all|main|worker [--dry-run])" >&2; exit 2 ;;
  esac
done

# Load config/cloud-config.env without clobbering variables already set in the environment.
while IFS= read -r line; do
  if [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Z_][A-Z0-9_]*)=\"?([^\"#]*)\"? ]]; then
    name="${BASH_REMATCH[2]}"; value="${BASH_REMATCH[3]}"
    value="${value%"${value##*[![:space:]]}"}"
    [ -z "${!name+x}" ] && export "$name=$value"
  fi
done < "${LAXAI_CONFIG:-config/cloud-config.env}"

PROJECT="${GOOGLE_CLOUD_PROJECT:-}"
if [ -z "$PROJECT" ]; then
  $dry_run && PROJECT="your-project-id" || { echo "set GOOGLE_CLOUD_PROJECT" >&2; exit 2; }
fi
REGION="${CLOUD_REGION:-us-central1}"
SA_EMAIL="${SERVICE_ACCOUNT:-googlebatch}@${PROJECT}.iam.gserviceaccount.com"
SERVICE_NAME="${SERVICE_NAME:-laxai-service}"
WORKER_JOB="${WORKER_JOB_NAME:-laxai-training-worker}"
TOPIC="${TRAINING_TOPIC:-training-jobs}"
SUBSCRIPTION="${TRAINING_SUBSCRIPTION:-training-jobs-sub}"
DEAD_LETTER="${DEAD_LETTER_TOPIC:-training-jobs-dead-letter}"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-nam5}"
TASK_TIMEOUT="${TASK_TIMEOUT:-3600}"

run() {  # print in dry-run mode, run otherwise
  if $dry_run; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}
ensure() {  # ensure "<describe command>" -- <create command...>
  local describe="$1"; shift; shift
  if $dry_run; then echo "+ $describe >/dev/null 2>&1 || \\"; printf '   '; printf ' %q' "$@"; printf '\n'
  elif ! eval "$describe" >/dev/null 2>&1; then "$@"; fi
}

echo "Deploying '$component' to project $PROJECT in $REGION (GPU ${GPU_COUNT:-1}x ${GPU_TYPE}, ${CPU_LIMIT} CPU, ${MEMORY_LIMIT})" >&2

run gcloud services enable run.googleapis.com pubsub.googleapis.com firestore.googleapis.com \
  cloudbuild.googleapis.com artifactregistry.googleapis.com eventarc.googleapis.com cloudscheduler.googleapis.com --project="$PROJECT"
ensure "gcloud artifacts repositories describe $REGISTRY_REPO --location=$REGION --project=$PROJECT" -- \
  gcloud artifacts repositories create "$REGISTRY_REPO" --repository-format=docker --location="$REGION" --project="$PROJECT"

run gcloud builds submit --config=cloudbuild.yaml --project="$PROJECT" --region="$REGION" \
  --substitutions="_COMPONENT=$component,_REGION=$REGION,_REGISTRY_REPO=$REGISTRY_REPO,_SERVICE_NAME=$SERVICE_NAME,_WORKER_JOB=$WORKER_JOB,_SERVICE_ACCOUNT=${SERVICE_ACCOUNT:-googlebatch},_GPU_TYPE=$GPU_TYPE,_GPU_COUNT=${GPU_COUNT:-1},_CPU_LIMIT=$CPU_LIMIT,_MEMORY_LIMIT=$MEMORY_LIMIT,_TASK_TIMEOUT=$TASK_TIMEOUT,_TRAINING_TIMEOUT=$TRAINING_TIMEOUT,_MAX_CONCURRENT_JOBS=$MAX_CONCURRENT_JOBS,_TRAINING_TOPIC=$TOPIC,_ARTIFACT_BUCKET=${ARTIFACT_BUCKET:-}"

if [ "$component" = worker ]; then
  echo "Worker job $WORKER_JOB deployed." >&2
  exit 0
fi

# Wiring of the service: queue, push subscription with OIDC, dead letters, Firestore trigger.
if $dry_run; then
  URL="https://$SERVICE_NAME-PROJECT_HASH.$REGION.run.app"
else
  URL="$(gcloud run services describe "$SERVICE_NAME" --region="$REGION" --project="$PROJECT" --format='value(status.url)')"
fi
ensure "gcloud pubsub topics describe $TOPIC --project=$PROJECT" -- gcloud pubsub topics create "$TOPIC" --project="$PROJECT"
ensure "gcloud pubsub topics describe $DEAD_LETTER --project=$PROJECT" -- gcloud pubsub topics create "$DEAD_LETTER" --project="$PROJECT"
ensure "gcloud pubsub subscriptions describe $SUBSCRIPTION --project=$PROJECT" -- \
  gcloud pubsub subscriptions create "$SUBSCRIPTION" --topic="$TOPIC" --project="$PROJECT" \
  --push-endpoint="$URL/pubsub/push" --push-auth-service-account="$SA_EMAIL" \
  --push-auth-token-audience="$URL/pubsub/push" --ack-deadline=60 \
  --dead-letter-topic="$DEAD_LETTER" --max-delivery-attempts=10 --min-retry-delay=10s --max-retry-delay=600s
# "^@^" switches gcloud's list delimiter to @, so an audience list can hold commas.
run gcloud run services update "$SERVICE_NAME" --region="$REGION" --project="$PROJECT" \
  --update-env-vars="^@^PUSH_AUDIENCE=$URL/pubsub/push@PUSH_SERVICE_ACCOUNT=$SA_EMAIL@EVENTARC_AUDIENCE=$URL,$URL/eventarc/firestore@TICK_AUDIENCE=$URL/tasks/tick"
ensure "gcloud eventarc triggers describe laxai-job-notifier --location=$FIRESTORE_LOCATION --project=$PROJECT" -- \
  gcloud eventarc triggers create laxai-job-notifier --location="$FIRESTORE_LOCATION" --project="$PROJECT" \
  --destination-run-service="$SERVICE_NAME" --destination-run-region="$REGION" --destination-run-path=/eventarc/firestore \
  --event-filters=type=google.cloud.firestore.document.v1.written --event-filters=database='(default)' \
  --event-filters-path-pattern=document="${FIRESTORE_COLLECTION:-training_jobs}/{task}" \
  --event-data-content-type=application/protobuf --service-account="$SA_EMAIL"
# A periodic pass for lease sweeps and jobs waiting for a slot, even when no message arrives.
ensure "gcloud scheduler jobs describe laxai-dispatch-tick --location=$REGION --project=$PROJECT" -- \
  gcloud scheduler jobs create http laxai-dispatch-tick --location="$REGION" --project="$PROJECT" \
  --schedule="* * * * *" --uri="$URL/tasks/tick" --http-method=POST \
  --oidc-service-account-email="$SA_EMAIL" --oidc-token-audience="$URL/tasks/tick"
for role in roles/pubsub.subscriber roles/pubsub.publisher roles/datastore.user roles/logging.logWriter \
            roles/storage.objectAdmin roles/run.developer roles/eventarc.eventReceiver roles/iam.serviceAccountUser; do
  run gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$SA_EMAIL" --role="$role" --condition=None --quiet
done
echo "Service: $URL (Slack Request URL: $URL/slack/events)" >&2
