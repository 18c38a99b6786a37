#!/usr/bin/env bash
# The gcp tests run Google's Firestore and Pub/Sub emulators (they need the gcloud
# CLI with both emulator components, and Java). Say clearly what is missing.
set -euo pipefail
missing=()
command -v gcloud >/dev/null 2>&1 || missing+=("the Google Cloud CLI (gcloud)")
if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Java not found; installing openjdk-17-jre-headless for the emulators..." >&2
    apt-get install -y -q openjdk-17-jre-headless >/dev/null 2>&1 || true
  fi
  command -v java >/dev/null 2>&1 || missing+=("Java 17 (apt-get install openjdk-17-jre-headless)")
fi
if command -v gcloud >/dev/null 2>&1; then
  root="$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || echo /usr/lib/google-cloud-sdk)"
  [ -d "$root/platform/cloud-firestore-emulator" ] || missing+=("the Firestore emulator (google-cloud-cli-firestore-emulator / gcloud components install cloud-firestore-emulator)")
  [ -d "$root/platform/pubsub-emulator" ] || missing+=("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator / gcloud components install pubsub-emulator)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Cannot run the gcp tests: missing" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi
