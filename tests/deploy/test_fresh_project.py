"""deploy.sh against the stateful fake gcloud: an empty project to a running deployment, idempotently.

The fake refuses what Google Cloud refuses (APIs not enabled, missing resources, unreadable secrets,
a trigger away from its database, unknown flags), so a step that runs before what it needs, or a
step left out, fails here as it would on a real fresh project.
"""

from __future__ import annotations

import json

import pytest
import yaml

from orchestrator.config import REPO_ROOT
from tests.deploy.gcloud_fixture import PROJECT, FakeProject, creating, roles
from tests.fakes.gcloud_run_build import build_values, step_scripts

SERVICE = f"serviceAccount:laxai-service@{PROJECT}.iam.gserviceaccount.com"
WORKER = f"serviceAccount:laxai-worker@{PROJECT}.iam.gserviceaccount.com"
AUDIENCES = ("PUSH_AUDIENCE", "PUSH_SERVICE_ACCOUNT", "EVENTARC_AUDIENCE", "TICK_AUDIENCE")


@pytest.fixture
def project(tmp_path) -> FakeProject:
    return FakeProject.make(tmp_path)


@pytest.fixture(scope="module")
def deployed_once(tmp_path_factory) -> FakeProject:
    project = FakeProject.make(tmp_path_factory.mktemp("deployed"))
    result = project.deploy()
    assert result.returncode == 0, result.stderr[-3000:]
    return project


@pytest.fixture
def deployed(deployed_once, tmp_path) -> FakeProject:
    """A project as the first deploy left it (a copy: tests may change it)."""
    return deployed_once.clone(tmp_path)


def test_a_fresh_project_is_provisioned_end_to_end(deployed):
    state = deployed.state()
    for api in ("run", "cloudbuild", "artifactregistry", "firestore", "pubsub", "eventarc", "eventarcpublishing",
                "cloudscheduler", "secretmanager", "storage", "iam"):
        assert f"{api}.googleapis.com" in state["apis"]
    assert state["databases"]["(default)"]["locationId"] == "nam5"
    assert f"{PROJECT}-laxai-artifacts" in state["buckets"]
    assert [i["state"] for i in state["indexes"]] == ["READY", "READY"]
    assert state["field_overrides"] == {"training_jobs/spec": True}
    sub = state["subscriptions"]["training-jobs-sub"]
    assert sub["ackDeadlineSeconds"] >= 300 and sub["deadLetterTopic"] == "training-jobs-dead-letter"
    assert "training-jobs-dead-letter-sub" in state["subscriptions"]
    agent = f"serviceAccount:service-{state['number']}@gcp-sa-pubsub.iam.gserviceaccount.com"
    assert "roles/pubsub.publisher" in roles(state["topics"]["training-jobs-dead-letter"]["iam"], agent)
    assert "roles/pubsub.subscriber" in roles(sub["iam"], agent)
    assert state["triggers"]["nam5/laxai-job-notifier"]["serviceAccount"] == SERVICE.split(":")[1]
    assert "us-central1/laxai-dispatch-tick" in state["scheduler"]


def test_the_worker_job_gets_an_l4_a_sized_scratch_volume_and_its_settings(deployed):
    job = deployed.state()["jobs"]["us-central1/laxai-training-worker"]
    assert (job["gpu"], job["gpu-type"], job["gpuZonalRedundancy"]) == ("1", "nvidia-l4", False)
    assert job["serviceAccount"] == WORKER.split(":")[1]
    assert job["env"]["REQUIRE_GPU"] == "1" and job["env"]["ARTIFACT_BUCKET"] == f"{PROJECT}-laxai-artifacts"
    assert job["env"]["LAXAI_HOME"] == "/var/laxai" and job["mounts"] == {"/var/laxai": "laxai-home"}
    assert job["volumes"]["laxai-home"] == {"name": "laxai-home", "type": "in-memory", "size-limit": "6Gi"}
    assert int(job["env"]["MAX_DATASET_BYTES"]) == 5 * 2**30  # the volume less 1 GiB
    assert job["secrets"] == {"WANDB_API_KEY": "wandb-api-key:1"}  # pinned, not latest


def test_each_account_gets_only_what_it_needs(deployed):
    state = deployed.state()
    assert roles(state["iam"], WORKER) == {"roles/datastore.user"}
    assert roles(state["iam"], SERVICE) == {"roles/datastore.user", "roles/eventarc.eventReceiver"}
    accounts = state["service_accounts"]
    # The worker may act as no account and touch no Cloud Run resource; the service acts as the worker only.
    assert not any(roles(entry["iam"], WORKER) for entry in accounts.values())
    assert [email for email, entry in accounts.items() if roles(entry["iam"], SERVICE)] == \
        [WORKER.split(":")[1]]
    assert not any(roles(entry["iam"], WORKER) for entry in (*state["services"].values(), *state["jobs"].values()))
    job = state["jobs"]["us-central1/laxai-training-worker"]
    assert roles(job["iam"], SERVICE) == {"roles/run.jobsExecutorWithOverrides"}
    assert roles(state["buckets"][f"{PROJECT}-laxai-artifacts"]["iam"], WORKER) == {"roles/storage.objectAdmin"}
    secrets = state["secrets"]
    assert {name for name, s in secrets.items() if roles(s["iam"], SERVICE)} == \
        {"slack-bot-token", "slack-signing-secret", "laxai-api-tokens"}
    assert {name for name, s in secrets.items() if roles(s["iam"], WORKER)} == {"wandb-api-key"}


def test_the_service_has_its_audiences_pinned_secrets_and_one_instance(deployed):
    service = deployed.state()["services"]["us-central1/laxai-service"]
    number = deployed.state()["number"]
    fixed = f"https://laxai-service-{number}.us-central1.run.app"
    env = service["env"]
    assert env["PUSH_AUDIENCE"] == f"{fixed}/pubsub/push" and env["TICK_AUDIENCE"] == f"{fixed}/tasks/tick"
    assert env["PUSH_SERVICE_ACCOUNT"] == SERVICE.split(":")[1]
    # Eventarc signs for the URL Cloud Run reports (the hash form here): both forms are accepted.
    assert set(env["EVENTARC_AUDIENCE"].split(",")) >= {fixed, service["url"], f"{service['url']}/eventarc/firestore"}
    assert service["secrets"] == {"SLACK_BOT_TOKEN": "slack-bot-token:1", "SLACK_SIGNING_SECRET":
                                  "slack-signing-secret:1", "LAXAI_API_TOKENS": "laxai-api-tokens:1"}
    assert service["max-instances"] == "1" and service["iam"] == {"roles/run.invoker": ["allUsers"]}


def test_a_second_run_creates_nothing(deployed_once, deployed):
    again = deployed.deploy()
    assert again.returncode == 0, again.stderr[-3000:]
    second = deployed.calls()
    assert second and all(call["ok"] for call in second)
    assert creating(second) == []
    assert deployed.state() == {**deployed_once.state(), "builds": deployed.state()["builds"],
                                "services": deployed.state()["services"], "jobs": deployed.state()["jobs"]}
    assert len(creating(deployed_once.calls())) > 40  # the check sees creations: the first run made them


def test_a_changed_secret_becomes_a_new_pinned_version(deployed):
    again = deployed.deploy(SLACK_BOT_TOKEN="xoxb-rotated")
    assert again.returncode == 0, again.stderr[-3000:]
    state = deployed.state()
    assert state["secrets"]["slack-bot-token"]["versions"] == ["xoxb-test", "xoxb-rotated"]
    assert state["services"]["us-central1/laxai-service"]["secrets"]["SLACK_BOT_TOKEN"] == "slack-bot-token:2"


def rebuild(project: FakeProject, replace: tuple[str, str] | None = None) -> None:
    """Run cloudbuild.yaml's deploy steps as a build started without deploy.sh would (its defaults only)."""
    config = yaml.safe_load((REPO_ROOT / "cloudbuild.yaml").read_text())
    images = project.state()["images"]
    build_id = "rebuild1"
    values = build_values(config, {}, PROJECT, project.state()["number"], "us-central1")
    values["BUILD_ID"] = build_id
    for step_id, _image, args in step_scripts(config, values):
        if not step_id.startswith("deploy-"):
            continue
        assert any(name in args[1] for name in images)  # deploys the images the first build pushed
        script = args[1].replace(*replace) if replace else args[1]
        result = project.gcloud_bash(script)
        assert result.returncode == 0, result.stderr[-2000:]


def test_a_rebuild_keeps_what_deploy_sh_set(deployed):
    before = deployed.state()["jobs"]["us-central1/laxai-training-worker"]
    rebuild(deployed)
    service = deployed.state()["services"]["us-central1/laxai-service"]
    assert all(service["env"].get(name) for name in AUDIENCES)
    assert service["secrets"]["SLACK_BOT_TOKEN"] == "slack-bot-token:1"
    job = deployed.state()["jobs"]["us-central1/laxai-training-worker"]
    assert job["secrets"] == {"WANDB_API_KEY": "wandb-api-key:1"} and job["env"]["REQUIRE_GPU"] == "1"
    assert (job["volumes"], job["mounts"], job["env"]["MAX_DATASET_BYTES"]) == \
        (before["volumes"], before["mounts"], before["env"]["MAX_DATASET_BYTES"])


def test_set_env_vars_would_have_dropped_them(deployed):
    # What cloudbuild.yaml did before: the fake models --set-env-vars replacing the whole environment.
    rebuild(deployed, ("--update-env-vars", "--set-env-vars"))
    env = deployed.state()["services"]["us-central1/laxai-service"]["env"]
    assert not any(env.get(name) for name in AUDIENCES)


def test_without_the_apis_the_first_command_that_needs_one_is_refused(project):
    result = project.deploy(DEPLOY_SKIP_APIS="1")
    assert result.returncode != 0 and "firestore.googleapis.com has not been used" in result.stderr
    assert project.state()["databases"] == {}


def test_without_the_secret_grants_cloud_run_refuses_the_deploy(project):
    result = project.deploy(DEPLOY_SKIP_SECRET_GRANTS="1")
    assert result.returncode != 0
    assert "Permission denied on secret" in result.stderr and "secretAccessor" in result.stderr
    assert project.state()["services"] == {}


def test_a_database_elsewhere_stops_deploy_before_a_trigger_is_made(project):
    assert project.gcloud("services", "enable", "firestore.googleapis.com", "eventarc.googleapis.com").returncode == 0
    assert project.gcloud("firestore", "databases", "create", "--location=eur3").returncode == 0
    result = project.deploy()
    assert result.returncode == 2 and "Set FIRESTORE_LOCATION=eur3" in result.stderr
    assert project.state()["triggers"] == {} and project.state()["services"] == {}


def test_the_fake_refuses_what_gcloud_refuses(deployed):
    refused = {
        "unknown flag": (["run", "jobs", "deploy", "laxai-training-worker", "--region=us-central1", "--gpus=1"],
                         "unrecognized arguments: --gpus"),
        "trigger away from the database": (
            ["eventarc", "triggers", "create", "t2", "--location=us-central1", "--destination-run-service=laxai-service",
             "--destination-run-region=us-central1", "--event-filters=type=google.cloud.firestore.document.v1.written",
             f"--service-account=laxai-service@{PROJECT}.iam.gserviceaccount.com"], "must match the Firestore"),
        "missing secret": (["secrets", "versions", "access", "latest", "--secret=nope"], "not found"),
        "missing account": (["projects", "add-iam-policy-binding", PROJECT, "--condition=None", "--role=roles/viewer",
                             f"--member=serviceAccount:ghost@{PROJECT}.iam.gserviceaccount.com"], "does not exist"),
        "missing bucket": (["storage", "buckets", "add-iam-policy-binding", "gs://nope", "--role=roles/viewer",
                            "--member=allUsers"], "not found"),
        "unreadable secret": (["run", "services", "update", "laxai-service", "--region=us-central1",
                               "--update-secrets=WANDB_API_KEY=wandb-api-key:1"], "Permission denied on secret"),
    }
    for case, (argv, message) in refused.items():
        result = deployed.gcloud(*argv)
        assert result.returncode != 0 and message in result.stderr, (case, result.stderr)


def test_dry_run_prints_every_step_in_dependency_order(project):
    out = project.deploy("--dry-run").stdout
    lines = [line for line in out.splitlines() if line.startswith(("+", " "))]
    order = ["gcloud services enable", "gcloud firestore databases create", "gcloud storage buckets create",
             "gcloud iam service-accounts create laxai-worker", "roles/datastore.user", "gcloud secrets create",
             "roles/secretmanager.secretAccessor", "gcloud firestore indexes composite create", "gcloud builds submit",
             "roles/run.jobsExecutorWithOverrides", "gcloud firestore indexes composite list",
             "gcloud pubsub subscriptions create training-jobs-sub", "gcloud eventarc triggers create",
             "gcloud scheduler jobs create"]
    positions = [next(i for i, line in enumerate(lines) if step in line) for step in order]
    assert positions == sorted(positions), dict(zip(order, positions))
    assert json.dumps(out).count("--ack-deadline=600") == 1


def test_dataset_buckets_are_mounted_read_only_and_readable_by_the_worker_only(project):
    for bucket in ("data-a", "public-ds"):  # the operator's own buckets
        assert project.gcloud("services", "enable", "storage.googleapis.com").returncode == 0
        assert project.gcloud("storage", "buckets", "create", f"gs://{bucket}").returncode == 0
    result = project.deploy("worker", DATASET_BUCKETS="tenant-a=gs://data-a/yolo/,*=gs://public-ds/")
    assert result.returncode == 0, result.stderr[-3000:]
    state = project.state()
    job = state["jobs"]["us-central1/laxai-training-worker"]
    assert job["mounts"] == {"/var/laxai": "laxai-home", "/mnt/gcs/data-a": "data-0", "/mnt/gcs/public-ds": "data-1"}
    assert job["volumes"]["data-0"] == {"name": "data-0", "type": "cloud-storage", "bucket": "data-a", "readonly": "true"}
    assert job["env"]["LAXAI_DATA_ROOTS"] == "tenant-a=/mnt/gcs/data-a/yolo/,*=/mnt/gcs/public-ds/"
    assert job["env"]["DATASET_BUCKETS"] == "tenant-a=gs://data-a/yolo/,*=gs://public-ds/"
    for bucket in ("data-a", "public-ds"):
        assert roles(state["buckets"][bucket]["iam"], WORKER) == {"roles/storage.objectViewer"}
        assert roles(state["buckets"][bucket]["iam"], SERVICE) == set()


def test_a_dataset_bucket_that_does_not_exist_is_refused(project):
    result = project.deploy("worker", DATASET_BUCKETS="*=gs://no-such-bucket/")
    assert result.returncode != 0 and "gs://no-such-bucket not found" in result.stderr
    assert project.state()["jobs"] == {}


def test_a_scratch_volume_over_half_the_memory_is_refused_before_anything_runs(project):
    result = project.deploy(WORKER_SCRATCH_LIMIT="12Gi")
    assert result.returncode == 2 and "over half of MEMORY_LIMIT=16Gi" in result.stderr
    assert project.calls() == []


def test_a_secret_with_no_value_is_named_and_nothing_is_deployed(project):
    env = {**project.env}
    del env["SLACK_SIGNING_SECRET"]
    project.env = env
    result = project.deploy()
    assert result.returncode == 2 and "secret slack-signing-secret does not exist: set SLACK_SIGNING_SECRET" in result.stderr
    assert "slack-signing-secret" not in project.state()["secrets"] and project.state()["services"] == {}


@pytest.mark.skipif(not (REPO_ROOT / "firestore.indexes.json").is_file(), reason="no firestore.indexes.json yet")
def test_the_repositorys_index_file_is_deployed_whole(project):
    spec = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    env = {k: v for k, v in project.env.items() if k != "FIRESTORE_INDEXES"}
    project.env = env
    result = project.deploy("worker")
    assert result.returncode == 0, result.stderr[-3000:]
    state = project.state()
    deployed = sorted((i["group"], json.dumps(i["fields"])) for i in state["indexes"])
    wanted = sorted((i["collectionGroup"], json.dumps(i["fields"]))
                    for i in spec["indexes"])
    assert deployed == wanted  # (READY is waited for before the service gets work: not for "worker")
    exempt = {f"{o['collectionGroup']}/{o['fieldPath']}" for o in spec.get("fieldOverrides", []) if not o["indexes"]}
    assert {key for key, off in state["field_overrides"].items() if off} == exempt
