#!/usr/bin/env bash
# Deploy LaxAI Train to a Google Cloud project, from an empty project to a running service:
#   ./deploy.sh            # everything: project set-up, service and worker, wiring
#   ./deploy.sh main       # the service (REST API, Slack bot, dispatcher, notifier) and its wiring
#   ./deploy.sh worker     # the GPU training worker (Cloud Run Job)
#   ./deploy.sh [...] --dry-run   # print every command, in order, instead of running it
# Settings come from config/cloud-config.env; the environment overrides the file. Every step that
# creates something looks first (describe, list, get-iam-policy), so a second run creates nothing.
# Secrets come from the environment (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, LAXAI_API_TOKENS,
# WANDB_API_KEY) or a prompt; each deploy pins the versions it read.
set -euo pipefail
cd "$(dirname "$0")"

component=all
dry_run=false
for arg in "$@"; do
  case "$arg" in
    all|main|worker) component="$arg" ;;
    --dry-run) dry_run=true ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
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
SERVICE_NAME="${SERVICE_NAME:-laxai-service}"
WORKER_JOB="${WORKER_JOB_NAME:-laxai-training-worker}"
TOPIC="${TRAINING_TOPIC:-training-jobs}"
SUBSCRIPTION="${TRAINING_SUBSCRIPTION:-training-jobs-sub}"
DEAD_LETTER="${DEAD_LETTER_TOPIC:-training-jobs-dead-letter}"
COLLECTION="${FIRESTORE_COLLECTION:-training_jobs}"
INDEXES="${FIRESTORE_INDEXES:-firestore.indexes.json}"  # composite indexes and field exemptions
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-nam5}"
ARTIFACT_BUCKET="${ARTIFACT_BUCKET:-$PROJECT-laxai-artifacts}"
BUILD_BUCKET="${PROJECT}_cloudbuild"
TASK_TIMEOUT="${TASK_TIMEOUT:-3600}"
WORKER_SCRATCH_LIMIT="${WORKER_SCRATCH_LIMIT:-6Gi}"
SERVICE_MAX_INSTANCES="${SERVICE_MAX_INSTANCES:-1}"
# Three identities: the service, the worker (runs users' training: least of all) and Cloud Build's.
SERVICE_SA="laxai-service@$PROJECT.iam.gserviceaccount.com"
WORKER_SA="laxai-worker@$PROJECT.iam.gserviceaccount.com"
BUILDER_SA="laxai-builder@$PROJECT.iam.gserviceaccount.com"
APIS=(run cloudbuild artifactregistry firestore pubsub eventarc eventarcpublishing cloudscheduler
      secretmanager storage iam)
# secret name, environment variable, runtime account that reads it
SECRETS=("slack-bot-token SLACK_BOT_TOKEN $SERVICE_SA" "slack-signing-secret SLACK_SIGNING_SECRET $SERVICE_SA"
         "laxai-api-tokens LAXAI_API_TOKENS $SERVICE_SA" "wandb-api-key WANDB_API_KEY $WORKER_SA")
P=(--project="$PROJECT")

# -- helpers ---------------------------------------------------------------------------------

say() { echo "$*" >&2; }
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
run() {  # print in dry-run mode, run otherwise
  if $dry_run; then show "$@"; else "$@"; fi
}
ensure() {  # ensure <describe command...> -- <create command...>: create only what describe misses
  local describe=()
  while [ "$1" != "--" ]; do describe+=("$1"); shift; done; shift
  if $dry_run; then show "${describe[@]}" | sed 's/$/ >\/dev\/null 2>\&1 || \\/'; printf '   '; show "$@" | cut -c2-
  elif ! "${describe[@]}" >/dev/null 2>&1; then "$@"; fi
}
grant() {  # grant "<resource kind>" RESOURCE MEMBER ROLE [flags]: add the binding unless it is there
  local kind=($1) resource="$2" member="$3" role="$4"; shift 4
  local extra=("$@")
  [ "${kind[0]}" = projects ] && extra+=(--condition=None)
  if ! $dry_run; then
    # --flatten and --format are accepted by every command (--filter is not: storage buckets).
    local found
    found="$(gcloud "${kind[@]}" get-iam-policy "$resource" "$@" "${P[@]}" --flatten='bindings[].members' \
      --format='value(bindings.role,bindings.members)')"
    grep -qxF "$role"$'\t'"$member" <<<"$found" && return 0
  fi
  local add=(gcloud "${kind[@]}" add-iam-policy-binding "$resource" "${extra[@]}" "${P[@]}"
             --member="$member" --role="$role" --quiet)
  if $dry_run; then show "${add[@]}"; else "${add[@]}" >/dev/null; fi  # it prints the whole policy
}
mebibytes() {  # 16Gi, 512Mi, 8G -> MiB
  local q="$1"
  case "$q" in
    *Gi) echo $(( ${q%Gi} * 1024 )) ;; *Mi) echo "${q%Mi}" ;;
    *G) echo $(( ${q%G} * 1000 * 1000 / 1024 )) ;; *M) echo $(( ${q%M} * 1000 / 1024 )) ;;
    *) echo "bad quantity: $q (use e.g. 16Gi or 512Mi)" >&2; exit 2 ;;
  esac
}

# -- checks before anything is touched ---------------------------------------------------------

memory_mib=$(mebibytes "$MEMORY_LIMIT"); scratch_mib=$(mebibytes "$WORKER_SCRATCH_LIMIT")
if [ $(( scratch_mib * 2 )) -gt "$memory_mib" ]; then
  say "WORKER_SCRATCH_LIMIT=$WORKER_SCRATCH_LIMIT is over half of MEMORY_LIMIT=$MEMORY_LIMIT: the in-memory volume" \
      "counts against the worker's memory; leave the training process at least half"
  exit 2
fi
# A gs:// dataset is copied into the in-memory LAXAI_HOME: cap it at the scratch space less 1 GiB for
# checkpoints and Ultralytics' run folder, so a large dataset fails the job with a clear message
# instead of the task being killed for memory.
MAX_DATASET_BYTES=$(( (scratch_mib - 1024) * 1024 * 1024 ))
[ "$MAX_DATASET_BYTES" -gt 0 ] || { say "WORKER_SCRATCH_LIMIT must be over 1Gi"; exit 2; }
# DATASET_BUCKETS (tenant=gs://bucket/prefix/,...): the buckets are mounted read-only on the worker
# at /mnt/gcs/<bucket>, and the same prefixes become the worker's LAXAI_DATA_ROOTS there.
DATASET_BUCKET_NAMES=(); DATA_ROOTS=()
IFS=',' read -ra dataset_entries <<<"${DATASET_BUCKETS:-}"
for entry in "${dataset_entries[@]}"; do
  [ -z "${entry// }" ] && continue
  tenant="${entry%%=*}"; uri="${entry#*=}"; rest="${uri#gs://}"; bucket="${rest%%/*}"
  [[ "$uri" == gs://?* ]] || { say "DATASET_BUCKETS entries must look like tenant=gs://bucket/path/ (got $entry)"; exit 2; }
  [[ " ${DATASET_BUCKET_NAMES[*]} " == *" $bucket "* ]] || DATASET_BUCKET_NAMES+=("$bucket")
  DATA_ROOTS+=("$tenant=/mnt/gcs/$rest")
done

say "Deploying '$component' to project $PROJECT in $REGION (GPU ${GPU_COUNT:-1}x ${GPU_TYPE}, ${CPU_LIMIT} CPU," \
    "${MEMORY_LIMIT}, scratch ${WORKER_SCRATCH_LIMIT}; Firestore in $FIRESTORE_LOCATION; artifacts gs://$ARTIFACT_BUCKET)"

# -- 1. APIs ---------------------------------------------------------------------------------

enable_apis() {
  local wanted=() missing=() enabled=""
  for api in "${APIS[@]}"; do wanted+=("$api.googleapis.com"); done
  if ! $dry_run && [ -z "${DEPLOY_SKIP_APIS:-}" ]; then
    enabled="$(gcloud services list --enabled "${P[@]}" --format='value(config.name)')"
  fi
  [ -n "${DEPLOY_SKIP_APIS:-}" ] && return 0  # tests only: shows what a project without them refuses
  for api in "${wanted[@]}"; do grep -qx "$api" <<<"$enabled" || missing+=("$api"); done
  [ ${#missing[@]} -eq 0 ] || run gcloud services enable "${missing[@]}" "${P[@]}"
}

project_number() {
  if $dry_run; then echo PROJECT_NUMBER; else gcloud projects describe "$PROJECT" --format='value(projectNumber)'; fi
}

# -- 2. Firestore, buckets, registry, accounts -------------------------------------------------

firestore_database() {
  local location=""
  if $dry_run; then
    ensure gcloud firestore databases describe --database='(default)' "${P[@]}" -- \
      gcloud firestore databases create --database='(default)' --location="$FIRESTORE_LOCATION" \
      --type=firestore-native "${P[@]}"
    return 0
  fi
  location="$(gcloud firestore databases describe --database='(default)' "${P[@]}" \
    --format='value(locationId)' 2>/dev/null || true)"
  if [ -z "$location" ]; then
    run gcloud firestore databases create --database='(default)' --location="$FIRESTORE_LOCATION" \
      --type=firestore-native "${P[@]}"
  elif [ "$location" != "$FIRESTORE_LOCATION" ]; then
    say "The Firestore database is in $location, not FIRESTORE_LOCATION=$FIRESTORE_LOCATION: the Eventarc" \
        "trigger must be in the database's location. Set FIRESTORE_LOCATION=$location."
    exit 2
  fi
}

storage_and_registry() {
  ensure gcloud storage buckets describe "gs://$ARTIFACT_BUCKET" "${P[@]}" -- \
    gcloud storage buckets create "gs://$ARTIFACT_BUCKET" --location="$REGION" --uniform-bucket-level-access \
    --public-access-prevention "${P[@]}"
  ensure gcloud storage buckets describe "gs://$BUILD_BUCKET" "${P[@]}" -- \
    gcloud storage buckets create "gs://$BUILD_BUCKET" --location="$REGION" --uniform-bucket-level-access \
    --public-access-prevention "${P[@]}"
  ensure gcloud artifacts repositories describe "$REGISTRY_REPO" --location="$REGION" "${P[@]}" -- \
    gcloud artifacts repositories create "$REGISTRY_REPO" --repository-format=docker --location="$REGION" "${P[@]}"
}

service_accounts() {
  local name
  for name in laxai-service laxai-worker laxai-builder; do
    ensure gcloud iam service-accounts describe "$name@$PROJECT.iam.gserviceaccount.com" "${P[@]}" -- \
      gcloud iam service-accounts create "$name" --display-name="LaxAI Train ${name#laxai-}" "${P[@]}"
  done
}

# -- 3. Least-privilege roles (each after the resource it is on) -------------------------------

account_roles() {
  local sa="serviceAccount:" bucket
  # The worker: job records and the model registry, its checkpoints, dataset reads. Nothing on Run or IAM.
  grant projects "$PROJECT" "$sa$WORKER_SA" roles/datastore.user
  grant "storage buckets" "gs://$ARTIFACT_BUCKET" "$sa$WORKER_SA" roles/storage.objectAdmin
  for bucket in "${DATASET_BUCKET_NAMES[@]}"; do
    grant "storage buckets" "gs://$bucket" "$sa$WORKER_SA" roles/storage.objectViewer
  done
  # The service: job records; receiving Eventarc's events (it is the trigger's identity); acting as
  # the worker account only, to start executions that run as it. Job-level and topic-level roles follow
  # once the job and the topic exist.
  grant projects "$PROJECT" "$sa$SERVICE_SA" roles/datastore.user
  grant projects "$PROJECT" "$sa$SERVICE_SA" roles/eventarc.eventReceiver
  grant "iam service-accounts" "$WORKER_SA" "$sa$SERVICE_SA" roles/iam.serviceAccountUser
  # Cloud Build: push images, deploy the service and the job as their accounts, write its logs.
  grant projects "$PROJECT" "$sa$BUILDER_SA" roles/run.developer
  grant projects "$PROJECT" "$sa$BUILDER_SA" roles/logging.logWriter
  grant "iam service-accounts" "$SERVICE_SA" "$sa$BUILDER_SA" roles/iam.serviceAccountUser
  grant "iam service-accounts" "$WORKER_SA" "$sa$BUILDER_SA" roles/iam.serviceAccountUser
  grant "artifacts repositories" "$REGISTRY_REPO" "$sa$BUILDER_SA" roles/artifactregistry.writer --location="$REGION"
  grant "storage buckets" "gs://$BUILD_BUCKET" "$sa$BUILDER_SA" roles/storage.objectViewer
}

# -- 4. Secrets: created from the environment or a prompt, read by their one account, pinned --------

declare -A SECRET_VERSION
prompt_secret() {  # a new secret's value, asked for at the terminal (never echoed)
  local value=""
  if [ -t 0 ]; then read -rsp "Value for secret $1 (or set $2): " value; echo >&2; fi
  printf '%s' "$value"
}
ensure_secret() {
  local name="$1" variable="$2" account="$3" value current=""
  if $dry_run; then
    ensure gcloud secrets describe "$name" "${P[@]}" -- \
      gcloud secrets create "$name" --replication-policy=automatic --data-file=- "${P[@]}"
    SECRET_VERSION[$name]=VERSION
  else
    value="${!variable:-}"
    if ! gcloud secrets describe "$name" "${P[@]}" >/dev/null 2>&1; then
      [ -n "$value" ] || value="$(prompt_secret "$name" "$variable")"
      [ -n "$value" ] || { say "secret $name does not exist: set $variable (or run ./deploy.sh at a terminal)"; exit 2; }
      printf '%s' "$value" | gcloud secrets create "$name" --replication-policy=automatic --data-file=- "${P[@]}"
    elif [ -n "$value" ]; then
      current="$(gcloud secrets versions access latest --secret="$name" "${P[@]}" 2>/dev/null || true)"
      [ "$current" = "$value" ] || printf '%s' "$value" | gcloud secrets versions add "$name" --data-file=- "${P[@]}"
    fi
    local version
    version="$(gcloud secrets versions describe latest --secret="$name" "${P[@]}" --format='value(name)')"
    SECRET_VERSION[$name]="${version##*/}"
  fi
  [ -n "${DEPLOY_SKIP_SECRET_GRANTS:-}" ] && return 0  # tests only: shows the deploy refused without it
  grant secrets "$name" "serviceAccount:$account" roles/secretmanager.secretAccessor
}
secrets_for() {  # secrets_for [ACCOUNT]: the secrets that account reads (all when none is named)
  local entry name variable account
  for entry in "${SECRETS[@]}"; do
    read -r name variable account <<<"$entry"
    if [ -z "${1:-}" ] || [ "$account" = "$1" ]; then ensure_secret "$name" "$variable" "$account"; fi
  done
}

# -- 5. Firestore indexes (firestore.indexes.json), waited for until READY --------------------

index_commands() {  # one gcloud argument list per line (NUL-free), for what the project lacks
  local existing="$1"
  python3 - "$existing" "$INDEXES" <<'PY'
import json, shlex, sys
from pathlib import Path
existing = json.loads(sys.argv[1] or "[]")
path = Path(sys.argv[2])
spec = json.loads(path.read_text()) if path.is_file() else {}
def key(group, scope, fields):
    return (group, scope.upper(), tuple((f["fieldPath"], (f.get("order") or f.get("arrayConfig") or "").upper())
                                        for f in fields if f["fieldPath"] != "__name__"))
have = {key(i["name"].split("/collectionGroups/")[1].split("/")[0], i.get("queryScope", "COLLECTION"), i["fields"])
        for i in existing}
for index in spec.get("indexes", []):
    group, scope = index["collectionGroup"], index.get("queryScope", "COLLECTION")
    if key(group, scope, index["fields"]) in have:
        continue
    args = ["firestore", "indexes", "composite", "create", f"--collection-group={group}",
            f"--query-scope={scope.lower().replace('_', '-')}", "--async"]
    for field in index["fields"]:
        kind = f"order={field['order'].lower()}" if "order" in field else f"array-config={field['arrayConfig'].lower()}"
        args.append(f"--field-config=field-path={field['fieldPath']},{kind}")
    print(shlex.join(args))
for override in spec.get("fieldOverrides", []):
    if not override.get("indexes"):  # exempt from single-field indexing (large maps)
        print(shlex.join(["firestore", "indexes", "fields", "update", override["fieldPath"],
                          f"--collection-group={override['collectionGroup']}", "--disable-indexes", "--async"]))
PY
}
firestore_indexes() {
  [ -f "$INDEXES" ] || { echo "# no $INDEXES: no composite indexes to create"; return 0; }
  local existing="[]" line
  $dry_run || existing="$(gcloud firestore indexes composite list --database='(default)' "${P[@]}" --format=json)"
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    eval "set -- $line"
    if [ "$3" = fields ] && ! $dry_run; then  # an exemption already in place is left alone
      local state
      state="$(gcloud firestore indexes fields describe "$5" "$6" --database='(default)' "${P[@]}" \
        --format='value(indexConfig.indexes)' 2>/dev/null || true)"
      [ -z "$state" ] && continue
    fi
    run gcloud "$@" --database='(default)' "${P[@]}"
  done < <(index_commands "$existing")
}
wait_for_indexes() {
  [ -f "$INDEXES" ] || return 0
  if $dry_run; then show gcloud firestore indexes composite list --database='(default)' "${P[@]}" --format='value(state)'; return 0; fi
  local states started=$SECONDS
  while :; do
    states="$(gcloud firestore indexes composite list --database='(default)' "${P[@]}" --format='value(state)')"
    grep -qv '^READY$' <<<"$states" || break
    if [ $((SECONDS - started)) -ge "${INDEX_WAIT_SECONDS:-1800}" ]; then
      say "Firestore indexes not READY after $((SECONDS - started)) s; run ./deploy.sh again later"; exit 1
    fi
    say "waiting for Firestore indexes ($(grep -cv '^READY$' <<<"$states") building)..."
    sleep "${INDEX_POLL_SECONDS:-15}"
  done
}

# -- 6. Build and deploy (cloudbuild.yaml), then the job-level grant ---------------------------

service_url() {  # the service's URL as Cloud Run reports it (hash form), empty before it exists
  $dry_run && return 0
  gcloud run services describe "$SERVICE_NAME" --region="$REGION" "${P[@]}" --format='value(status.url)' 2>/dev/null || true
}
build_and_deploy() {
  # The fixed URL is known before the service exists; Cloud Run reports the hash form once it does.
  local URL="https://$SERVICE_NAME-$1.$REGION.run.app" reported="$2"
  local eventarc="$URL,$URL/eventarc/firestore"
  [ -n "$reported" ] && [ "$reported" != "$URL" ] && eventarc="$eventarc,$reported,$reported/eventarc/firestore"
  local data_roots; data_roots="$(IFS=','; echo "${DATA_ROOTS[*]}")"
  local buckets; buckets="$(IFS=','; echo "${DATASET_BUCKET_NAMES[*]}")"
  # Substitution values may hold commas: "^|^" makes | gcloud's list delimiter for this flag.
  run gcloud builds submit --config=cloudbuild.yaml "${P[@]}" --region="$REGION" \
    --service-account="projects/$PROJECT/serviceAccounts/$BUILDER_SA" \
    --gcs-source-staging-dir="gs://$BUILD_BUCKET/source" \
    --substitutions="^|^_COMPONENT=$component|_REGION=$REGION|_REGISTRY_REPO=$REGISTRY_REPO|_SERVICE_NAME=$SERVICE_NAME|_WORKER_JOB=$WORKER_JOB|_SERVICE_ACCOUNT=$SERVICE_SA|_WORKER_ACCOUNT=$WORKER_SA|_GPU_TYPE=$GPU_TYPE|_GPU_COUNT=${GPU_COUNT:-1}|_CPU_LIMIT=$CPU_LIMIT|_MEMORY_LIMIT=$MEMORY_LIMIT|_TASK_TIMEOUT=$TASK_TIMEOUT|_TRAINING_TIMEOUT=$TRAINING_TIMEOUT|_MAX_CONCURRENT_JOBS=$MAX_CONCURRENT_JOBS|_MAX_INSTANCES=$SERVICE_MAX_INSTANCES|_TRAINING_TOPIC=$TOPIC|_ARTIFACT_BUCKET=$ARTIFACT_BUCKET|_SCRATCH_LIMIT=$WORKER_SCRATCH_LIMIT|_MAX_DATASET_BYTES=$MAX_DATASET_BYTES|_DATASET_BUCKETS=${DATASET_BUCKETS:-}|_DATASET_MOUNTS=$buckets|_DATA_ROOTS=$data_roots|_PUSH_AUDIENCE=$URL/pubsub/push|_PUSH_SERVICE_ACCOUNT=$SERVICE_SA|_EVENTARC_AUDIENCE=$eventarc|_TICK_AUDIENCE=$URL/tasks/tick|_SLACK_BOT_TOKEN_VERSION=${SECRET_VERSION[slack-bot-token]:-}|_SLACK_SIGNING_SECRET_VERSION=${SECRET_VERSION[slack-signing-secret]:-}|_API_TOKENS_VERSION=${SECRET_VERSION[laxai-api-tokens]:-}|_WANDB_KEY_VERSION=${SECRET_VERSION[wandb-api-key]:-}"
}
audience_fix() {  # first deploy only: Eventarc signs for the URL Cloud Run reports, learnt just now
  local URL="https://$SERVICE_NAME-$1.$REGION.run.app" reported
  reported="$(service_url)"
  [ -z "$reported" ] || [ "$reported" = "$URL" ] || [ "$reported" = "$2" ] && return 0
  # "^|^" switches gcloud's list delimiter to |: an audience list holds commas, an account an @.
  run gcloud run services update "$SERVICE_NAME" --region="$REGION" "${P[@]}" \
    --update-env-vars="^|^PUSH_AUDIENCE=$URL/pubsub/push|PUSH_SERVICE_ACCOUNT=$SERVICE_SA|EVENTARC_AUDIENCE=$URL,$URL/eventarc/firestore,$reported,$reported/eventarc/firestore|TICK_AUDIENCE=$URL/tasks/tick"
}

# -- 7. Wiring: queue, dead letters, public endpoint, change feed, tick -------------------------

pubsub() {
  local number="$1" URL="https://$SERVICE_NAME-$1.$REGION.run.app"
  local agent="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"
  ensure gcloud pubsub topics describe "$TOPIC" "${P[@]}" -- gcloud pubsub topics create "$TOPIC" "${P[@]}"
  ensure gcloud pubsub topics describe "$DEAD_LETTER" "${P[@]}" -- gcloud pubsub topics create "$DEAD_LETTER" "${P[@]}"
  # Dead letters are kept for a week in their own subscription, for a person to look at.
  ensure gcloud pubsub subscriptions describe "$DEAD_LETTER-sub" "${P[@]}" -- \
    gcloud pubsub subscriptions create "$DEAD_LETTER-sub" --topic="$DEAD_LETTER" --message-retention-duration=7d "${P[@]}"
  # The ack deadline outlasts a slow dispatcher pass (Firestore transactions, a Cloud Run launch).
  ensure gcloud pubsub subscriptions describe "$SUBSCRIPTION" "${P[@]}" -- \
    gcloud pubsub subscriptions create "$SUBSCRIPTION" --topic="$TOPIC" "${P[@]}" \
    --push-endpoint="$URL/pubsub/push" --push-auth-service-account="$SERVICE_SA" \
    --push-auth-token-audience="$URL/pubsub/push" --ack-deadline=600 \
    --dead-letter-topic="$DEAD_LETTER" --max-delivery-attempts=10 --min-retry-delay=10s --max-retry-delay=600s
  # Pub/Sub's own agent forwards undeliverable messages: it publishes to the dead-letter topic and
  # acknowledges them on the subscription.
  grant "pubsub topics" "$DEAD_LETTER" "$agent" roles/pubsub.publisher
  grant "pubsub subscriptions" "$SUBSCRIPTION" "$agent" roles/pubsub.subscriber
  # Submitting (service) and continuing (worker) publish to the topic; neither may read it.
  grant "pubsub topics" "$TOPIC" "serviceAccount:$SERVICE_SA" roles/pubsub.publisher
  grant "pubsub topics" "$TOPIC" "serviceAccount:$WORKER_SA" roles/pubsub.publisher
}

service_wiring() {
  local number="$1" URL="https://$SERVICE_NAME-$1.$REGION.run.app"
  # Slack, the REST API and Google's pushes reach it unauthenticated; each endpoint checks its own
  # credentials (Slack signatures, API tokens, Google-signed OIDC tokens).
  grant "run services" "$SERVICE_NAME" allUsers roles/run.invoker --region="$REGION"
  local db_location="$FIRESTORE_LOCATION"
  ensure gcloud eventarc triggers describe laxai-job-notifier --location="$db_location" "${P[@]}" -- \
    gcloud eventarc triggers create laxai-job-notifier --location="$db_location" "${P[@]}" \
    --destination-run-service="$SERVICE_NAME" --destination-run-region="$REGION" --destination-run-path=/eventarc/firestore \
    --event-filters=type=google.cloud.firestore.document.v1.written --event-filters=database='(default)' \
    --event-filters-path-pattern=document="$COLLECTION/{task}" \
    --event-data-content-type=application/protobuf --service-account="$SERVICE_SA"
  # A periodic pass for lease sweeps and jobs waiting for a slot, even when no message arrives.
  ensure gcloud scheduler jobs describe laxai-dispatch-tick --location="$REGION" "${P[@]}" -- \
    gcloud scheduler jobs create http laxai-dispatch-tick --location="$REGION" "${P[@]}" \
    --schedule="* * * * *" --uri="$URL/tasks/tick" --http-method=POST \
    --oidc-service-account-email="$SERVICE_SA" --oidc-token-audience="$URL/tasks/tick"
}

# -- the steps, each after what it needs ---------------------------------------------------------

enable_apis
NUMBER="$(project_number)"
firestore_database
storage_and_registry
service_accounts
account_roles
case "$component" in worker) secrets_for "$WORKER_SA" ;; main) secrets_for "$SERVICE_SA" ;; *) secrets_for ;; esac
firestore_indexes
URL_BEFORE="$(service_url)"
build_and_deploy "$NUMBER" "$URL_BEFORE"
if [ "$component" != main ]; then
  # The service may start (with overrides) and cancel executions of this one job, nothing else.
  grant "run jobs" "$WORKER_JOB" "serviceAccount:$SERVICE_SA" roles/run.jobsExecutorWithOverrides --region="$REGION"
fi
if [ "$component" = worker ]; then
  say "Worker job $WORKER_JOB deployed."
  exit 0
fi
audience_fix "$NUMBER" "$URL_BEFORE"
wait_for_indexes  # before anything sends the service work: its queries need them
pubsub "$NUMBER"
service_wiring "$NUMBER"
say "Service: https://$SERVICE_NAME-$NUMBER.$REGION.run.app (Slack Request URL: .../slack/events)"
