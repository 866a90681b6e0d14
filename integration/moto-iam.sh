#!/usr/bin/env bash
# moto's S3 and IAM on loopback with IAM enforced, for the Object Lock tests
# (tests/object_lock.rs): a bucket with Object Lock, one without, and two credentials:
# an admin (s3:*) and an ingest role (no s3:DeleteObject, no s3:DeleteObjectVersion).
#   integration/moto-iam.sh start DIR   starts it, prints `export` lines (AWS_* = admin)
#   integration/moto-iam.sh stop DIR    stops it
# IAM is enforced only while integration/s3-attack.py runs (it turns it on and off through
# moto's /moto-api/reset-auth): moto 5 recomputes the signature of a request whose query
# holds a `/` wrongly (`list-type=2&prefix=r%2Fkeys%2F` fails with SignatureDoesNotMatch),
# and every cofre listing has one, so cofre itself runs with enforcement off.
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2")
case "$cmd" in
start)
    mkdir -p "$dir"
    python3 -c "import moto.server" 2>/dev/null || { echo "moto not installed: run integration/install-deps.sh" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -m moto.server -H 127.0.0.1 -p "$port" > "$dir/server.log" 2>&1 &
    echo $! > "$dir/pid"
    python3 - "$port" > "$dir/env" <<'PY'
import json, socket, sys, time
import boto3
port = int(sys.argv[1])
deadline = time.time() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("moto did not start")
        time.sleep(0.1)
ep = f"http://127.0.0.1:{port}"
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s3, iam = boto3.client("s3", **kw), boto3.client("iam", **kw)
locked, plain = "cofre-locked", "cofre-plain"
s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
s3.create_bucket(Bucket=plain)
def user(name, actions):
    iam.create_user(UserName=name)
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(doc))
    return iam.create_access_key(UserName=name)["AccessKey"]
admin = user("admin", ["s3:*"])
ingest = user("ingest", ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject",
                         "s3:GetObjectVersion", "s3:PutObject",
                         "s3:GetObjectRetention", "s3:PutObjectRetention",
                         "s3:GetBucketObjectLockConfiguration"])
print(f"export AWS_ENDPOINT_URL={ep}")
print("export AWS_REGION=us-east-1")
print(f"export AWS_ACCESS_KEY_ID={admin['AccessKeyId']}")
print(f"export AWS_SECRET_ACCESS_KEY={admin['SecretAccessKey']}")
print(f"export COFRE_TEST_BUCKET={locked}")
print(f"export COFRE_TEST_PLAIN_BUCKET={plain}")
print(f"export COFRE_TEST_INGEST_KEY_ID={ingest['AccessKeyId']}")
print(f"export COFRE_TEST_INGEST_SECRET={ingest['SecretAccessKey']}")
print(f"export COFRE_TEST_MOTO_API={ep}/moto-api")
PY
    cat "$dir/env"
    ;;
stop)
    [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
