#!/bin/sh
# One-shot MinIO setup, run by the compose service `minio-setup` (the minio/mc image):
# the only place the root account is used after MinIO starts. It makes the bucket, a
# policy that allows that bucket only (minio-policy.json), and the Ray nodes' user with
# the keys from storage.env, then exits. Safe to run again: each step replaces or keeps
# what is there, so re-running after changing AWS_SECRET_ACCESS_KEY rotates it.
set -eu

bucket=tune-mnist
policy=tune-mnist-bucket

# The nodes get storage.env; if its key were root's, they would hold root after all.
if [ "$AWS_ACCESS_KEY_ID" = "$MINIO_ROOT_USER" ]; then
    echo "minio-setup: AWS_ACCESS_KEY_ID (storage.env) must not be MINIO_ROOT_USER (minio-root.env)" >&2
    exit 1
fi

# MinIO takes a few seconds to start; a wrong root password must still end the setup.
tries=0
until mc alias set store http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "minio-setup: MinIO did not accept the root account from minio-root.env" >&2
        exit 1
    fi
    sleep 1
done

mc mb --ignore-existing "store/$bucket"
mc admin policy create store "$policy" /setup/minio-policy.json
mc admin user add store "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
mc admin policy attach store "$policy" --user "$AWS_ACCESS_KEY_ID"
echo "minio-setup: bucket $bucket, user $AWS_ACCESS_KEY_ID limited to it by policy $policy"
