"""The fake gcloud's commands for a project's parts: APIs, accounts, Firestore, Cloud Storage, Artifact
Registry, Secret Manager, Pub/Sub, Eventarc and Cloud Scheduler. Each refuses as the real one would."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from tests.fakes.gcloud_state import Call, Refused, account_email, require_account, split_dict

KNOWN_APIS = {f"{name}.googleapis.com" for name in (
    "run", "cloudbuild", "artifactregistry", "firestore", "pubsub", "eventarc", "eventarcpublishing",
    "cloudscheduler", "secretmanager", "storage", "iam", "logging", "compute")}


# -- services, projects, accounts --------------------------------------------------------------


def services_list(call: Call) -> Any:
    return [{"config": {"name": api}} for api in sorted(call.state["apis"])] if call.has("enabled") else []

def services_enable(call: Call) -> None:
    for api in call.positionals:
        if api not in KNOWN_APIS:
            raise Refused(f"Not found or permission denied for service(s): {api}.")
        if api not in call.state["apis"]:
            call.state["apis"].append(api)
        if api == "pubsub.googleapis.com":  # its service agent appears with the API
            agent = f"service-{call.state['number']}@gcp-sa-pubsub.iam.gserviceaccount.com"
            call.state["service_accounts"].setdefault(agent, {"iam": {}, "agent": True})

def projects_describe(call: Call) -> Any:
    return {"projectId": call.project, "projectNumber": call.state["number"], "lifecycleState": "ACTIVE"}

def account_describe(call: Call) -> Any:
    email = call.arg()
    require_account(call, email)
    return {"email": email, "name": f"projects/{call.project}/serviceAccounts/{email}"}

def account_create(call: Call) -> Any:
    email = account_email(call, call.arg())
    if email in call.state["service_accounts"]:
        raise Refused(f"Service account {email} already exists within project. [ALREADY_EXISTS]")
    call.state["service_accounts"][email] = {"iam": {}, "displayName": call.flag("display-name")}
    return None


# -- Firestore ---------------------------------------------------------------------------------


def database(call: Call) -> dict[str, Any]:
    found = call.state["databases"].get(call.flag("database", "(default)"))
    if found is None:
        raise Refused(f"Database projects/{call.project}/databases/(default) does not exist. [NOT_FOUND]")
    return found

def databases_describe(call: Call) -> Any:
    return database(call)

def databases_create(call: Call) -> None:
    name = call.flag("database", "(default)")
    if name in call.state["databases"]:
        raise Refused(f"Database {name} already exists. [ALREADY_EXISTS]")
    if not call.flag("location"):
        raise Refused("argument --location: Must be specified.", 2)
    call.state["databases"][name] = {"name": f"projects/{call.project}/databases/{name}",
                                     "locationId": call.flag("location"), "type": "FIRESTORE_NATIVE"}

def field_configs(call: Call) -> list[dict[str, str]]:
    fields = []
    for raw in call.flags.get("field-config", []):
        item = split_dict(raw)
        field = {"fieldPath": item["field-path"]}
        if "order" in item:
            field["order"] = item["order"].upper()
        else:
            field["arrayConfig"] = item["array-config"].upper()
        fields.append(field)
    return fields

def composite_create(call: Call) -> None:
    database(call)
    group = call.flag("collection-group")
    scope = call.flag("query-scope", "collection").upper().replace("-", "_")
    fields = field_configs(call)
    for index in call.state["indexes"]:
        if index["group"] == group and index["queryScope"] == scope and index["fields"] == fields:
            raise Refused("index already exists [ALREADY_EXISTS]")
    call.state["indexes"].append({"group": group, "queryScope": scope, "fields": fields, "state": "CREATING",
                                  "id": uuid.uuid4().hex[:12]})

def composite_list(call: Call) -> Any:
    database(call)
    out = []
    for index in call.state["indexes"]:
        out.append({"name": f"projects/{call.project}/databases/(default)/collectionGroups/{index['group']}"
                            f"/indexes/{index['id']}", "queryScope": index["queryScope"],
                    "fields": [*index["fields"], {"fieldPath": "__name__", "order": "ASCENDING"}],
                    "state": index["state"]})
        index["state"] = "READY"  # built by the next time anyone looks
    return out

def fields_describe(call: Call) -> Any:
    database(call)
    key = f"{call.flag('collection-group')}/{call.arg()}"
    exempt = call.state["field_overrides"].get(key)
    indexes = [] if exempt else [{"order": "ASCENDING"}, {"order": "DESCENDING"}, {"arrayConfig": "CONTAINS"}]
    return {"name": key, "indexConfig": {"indexes": indexes}}

def fields_update(call: Call) -> None:
    database(call)
    call.state["field_overrides"][f"{call.flag('collection-group')}/{call.arg()}"] = call.has("disable-indexes")


# -- Storage, Artifact Registry, Secret Manager ------------------------------------------------


def bucket_describe(call: Call) -> Any:
    name = call.arg().removeprefix("gs://").rstrip("/")
    if name not in call.state["buckets"]:
        raise Refused(f"gs://{name} not found: 404. [NOT_FOUND]")
    return {"name": name, "location": call.state["buckets"][name]["location"]}

def bucket_create(call: Call) -> None:
    name = call.arg().removeprefix("gs://").rstrip("/")
    if name in call.state["buckets"]:
        raise Refused(f"HTTPError 409: Your previous request to create the named bucket succeeded and you "
                      f"already own it. [{name}]")
    call.state["buckets"][name] = {"location": (call.flag("location") or "US").upper(), "iam": {}}

def repository_key(call: Call) -> str:
    return f"{call.flag('location')}/{call.arg()}"

def repository_describe(call: Call) -> Any:
    if repository_key(call) not in call.state["repositories"]:
        raise Refused(f"Repository {call.arg()} not found in {call.flag('location')} [NOT_FOUND]")
    return {"name": call.arg(), "format": "DOCKER"}

def repository_create(call: Call) -> None:
    if repository_key(call) in call.state["repositories"]:
        raise Refused("the repository already exists [ALREADY_EXISTS]")
    call.state["repositories"][repository_key(call)] = {"iam": {}}

def secret(call: Call, name: str) -> dict[str, Any]:
    found = call.state["secrets"].get(name)
    if found is None:
        raise Refused(f"NOT_FOUND: Secret [projects/{call.state['number']}/secrets/{name}] not found or has no versions.")
    return found

def read_data(call: Call) -> str:
    source = call.flag("data-file")
    if source is None:
        raise Refused("--data-file is required", 2)
    return sys.stdin.read() if source == "-" else Path(source).read_text()

def secrets_describe(call: Call) -> Any:
    secret(call, call.arg())
    return {"name": f"projects/{call.state['number']}/secrets/{call.arg()}"}

def secrets_create(call: Call) -> None:
    if call.arg() in call.state["secrets"]:
        raise Refused(f"Secret [{call.arg()}] already exists. [ALREADY_EXISTS]")
    entry = {"versions": [], "iam": {}}
    if call.has("data-file"):
        entry["versions"].append(read_data(call))
    call.state["secrets"][call.arg()] = entry

def version_number(call: Call, entry: dict[str, Any], name: str, version: str) -> int:
    number = len(entry["versions"]) if version == "latest" else int(version)
    if number < 1 or number > len(entry["versions"]):
        raise Refused(f"NOT_FOUND: Secret Version [{name}/versions/{version}] not found.")
    return number

def versions_add(call: Call) -> None:
    secret(call, call.arg())["versions"].append(read_data(call))

def versions_access(call: Call) -> str:
    name = call.flag("secret")
    entry = secret(call, name)
    return entry["versions"][version_number(call, entry, name, call.arg()) - 1]

def versions_describe(call: Call) -> Any:
    name = call.flag("secret")
    entry = secret(call, name)
    number = version_number(call, entry, name, call.arg())
    return {"name": f"projects/{call.state['number']}/secrets/{name}/versions/{number}", "state": "ENABLED"}


# -- Pub/Sub, Eventarc, Scheduler --------------------------------------------------------------


def topic_describe(call: Call) -> Any:
    if call.arg() not in call.state["topics"]:
        raise Refused(f"NOT_FOUND: Resource not found (resource={call.arg()}).")
    return {"name": f"projects/{call.project}/topics/{call.arg()}"}

def topic_create(call: Call) -> None:
    if call.arg() in call.state["topics"]:
        raise Refused(f"Failed to create topic [{call.arg()}]: Resource already exists in the project.")
    call.state["topics"][call.arg()] = {"iam": {}}

def subscription_describe(call: Call) -> Any:
    found = call.state["subscriptions"].get(call.arg())
    if found is None:
        raise Refused(f"NOT_FOUND: Resource not found (resource={call.arg()}).")
    return {key: value for key, value in found.items() if key != "iam"}

def subscription_create(call: Call) -> None:
    name = call.arg()
    if name in call.state["subscriptions"]:
        raise Refused(f"Failed to create subscription [{name}]: Resource already exists in the project.")
    for topic in (call.flag("topic"), call.flag("dead-letter-topic")):
        if topic and topic not in call.state["topics"]:
            raise Refused(f"NOT_FOUND: Resource not found (resource={topic}).")
    deadline = int(call.flag("ack-deadline", "10"))
    if not 10 <= deadline <= 600:
        raise Refused("INVALID_ARGUMENT: The ack deadline must be between 10 and 600 seconds.")
    if call.flag("push-auth-service-account"):
        require_account(call, call.flag("push-auth-service-account"))
    call.state["subscriptions"][name] = {
        "topic": call.flag("topic"), "ackDeadlineSeconds": deadline, "pushEndpoint": call.flag("push-endpoint"),
        "pushAudience": call.flag("push-auth-token-audience"), "deadLetterTopic": call.flag("dead-letter-topic"),
        "maxDeliveryAttempts": call.flag("max-delivery-attempts"), "iam": {}}

def trigger_describe(call: Call) -> Any:
    found = call.state["triggers"].get(f"{call.flag('location')}/{call.arg()}")
    if found is None:
        raise Refused(f"NOT_FOUND: trigger {call.arg()} not found in {call.flag('location')}")
    return found

def trigger_create(call: Call) -> None:
    location, name = call.flag("location"), call.arg()
    if f"{location}/{name}" in call.state["triggers"]:
        raise Refused(f"ALREADY_EXISTS: trigger {name}")
    filters = dict(item.split("=", 1) for item in call.flags.get("event-filters", []))
    if filters.get("type", "").startswith("google.cloud.firestore."):
        db = call.state["databases"].get(filters.get("database", "(default)"))
        if db is None:
            raise Refused("INVALID_ARGUMENT: the Firestore database does not exist")
        if db["locationId"] != location:
            raise Refused(f"INVALID_ARGUMENT: The trigger's location ({location}) must match the Firestore "
                          f"database's location ({db['locationId']}).")
    service = f"{call.flag('destination-run-region')}/{call.flag('destination-run-service')}"
    if service not in call.state["services"]:
        raise Refused(f"INVALID_ARGUMENT: Cloud Run service {service} not found")
    require_account(call, call.flag("service-account"))
    call.state["triggers"][f"{location}/{name}"] = {"name": name, "location": location, "filters": filters,
                                                     "serviceAccount": call.flag("service-account")}

def scheduler_describe(call: Call) -> Any:
    found = call.state["scheduler"].get(f"{call.flag('location')}/{call.arg()}")
    if found is None:
        raise Refused(f"NOT_FOUND: Job not found: {call.arg()}")
    return found

def scheduler_create(call: Call) -> None:
    key = f"{call.flag('location')}/{call.arg()}"
    if key in call.state["scheduler"]:
        raise Refused(f"ALREADY_EXISTS: Job {call.arg()} already exists.")
    if call.flag("oidc-service-account-email"):
        require_account(call, call.flag("oidc-service-account-email"))
    call.state["scheduler"][key] = {"name": call.arg(), "uri": call.flag("uri"), "schedule": call.flag("schedule")}
