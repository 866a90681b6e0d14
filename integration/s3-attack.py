#!/usr/bin/env python3
"""What ransomware holding a credential does to a repository in S3, for the Object Lock
tests (tests/object_lock.rs). Prints one JSON object of counts; reaches the store through
AWS_ENDPOINT_URL and the credential in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, with
moto's IAM enforcement on (COFRE_TEST_MOTO_API, integration/moto-iam.sh) while it runs.

  s3-attack.py delete-versions BUCKET PREFIX   try to delete every version of every object
                                               (no bypass header): the admin's attack
  s3-attack.py delete-and-overwrite BUCKET PREFIX
                                               try to delete every object and its current
                                               version, then overwrite it: the ingest role's
  s3-attack.py list BUCKET PREFIX              the keys under PREFIX
  s3-attack.py overwrite BUCKET KEY            overwrite one object
  s3-attack.py rewrite BUCKET KEY              write one object again, same bytes (what a
                                               retried PUT leaves: not an attack)
  s3-attack.py retention BUCKET KEY...         each key's retain-until, Unix seconds
  s3-attack.py bypass-delete BUCKET KEY        delete every version of KEY with the
                                               governance bypass header (an admin's right)
"""
import json, os, sys, urllib.request
import boto3
from botocore.exceptions import ClientError

cmd, bucket, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3")

def kind(key):
    return key[len(prefix):].split("/")[0]

def attempt(counts, what, fn):
    try:
        fn()
        counts[what + "_done"] = counts.get(what + "_done", 0) + 1
        return True
    except ClientError as e:
        code = e.response["Error"]["Code"]
        counts[what + "_" + code] = counts.get(what + "_" + code, 0) + 1
        return False

# Listed without a prefix and filtered here: moto cannot check a signed `prefix=a%2Fb`.
def versions():
    out, kw = [], {}
    while True:
        r = s3.list_object_versions(Bucket=bucket, **kw)
        out += [v for v in r.get("Versions", []) if v["Key"].startswith(prefix)]
        if not r.get("IsTruncated"):
            return out
        kw = {"KeyMarker": r["NextKeyMarker"], "VersionIdMarker": r["NextVersionIdMarker"]}

def objects():
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if o["Key"].startswith(prefix)]

def enforce(count):
    """IAM on (0 requests without it) or off (inf)."""
    api = os.environ["COFRE_TEST_MOTO_API"] + "/reset-auth"
    req = urllib.request.Request(api, data=count.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req).read()

def main(counts):
    if cmd == "delete-versions":
        for v in versions():
            attempt(counts, kind(v["Key"]), lambda: s3.delete_object(
                Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"]))
    elif cmd == "delete-and-overwrite":
        for k in objects():
            # The role may not list versions: HEAD names the current one.
            vid = s3.head_object(Bucket=bucket, Key=k)["VersionId"]
            attempt(counts, "delete_version", lambda: s3.delete_object(
                Bucket=bucket, Key=k, VersionId=vid))
            attempt(counts, "delete", lambda: s3.delete_object(Bucket=bucket, Key=k))
            attempt(counts, "overwrite", lambda: s3.put_object(
                Bucket=bucket, Key=k, Body=b"encrypted, pay 1 BTC"))
    elif cmd == "list":
        counts["keys"] = objects()
    elif cmd == "rewrite":
        body = s3.get_object(Bucket=bucket, Key=prefix)["Body"].read()
        attempt(counts, "rewrite", lambda: s3.put_object(Bucket=bucket, Key=prefix, Body=body))
    elif cmd == "overwrite":
        attempt(counts, "overwrite", lambda: s3.put_object(
            Bucket=bucket, Key=prefix, Body=b"encrypted, pay 1 BTC"))
    elif cmd == "retention":
        for k in sys.argv[3:]:
            d = s3.head_object(Bucket=bucket, Key=k).get("ObjectLockRetainUntilDate")
            counts[k] = int(d.timestamp()) if d else None
    elif cmd == "bypass-delete":
        for v in versions():
            if v["Key"] == prefix:
                attempt(counts, "bypass_delete", lambda: s3.delete_object(
                    Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"],
                    BypassGovernanceRetention=True))
    else:
        sys.exit(__doc__)

counts = {}
enforce("0")
try:
    main(counts)
finally:
    enforce("inf")
print(json.dumps(counts, sort_keys=True))
