"""libvips (pyvips) making the same variants as feedkeeper, in-process, one thread: for each
original, decode once, apply the EXIF orientation, resize to 320/640/1080 (never wider than the
original) with lanczos3, encode without metadata. Prints JSON: median ms per image per format.
Also times libvips's own fastest way (thumbnail_buffer per width, which shrinks while decoding)."""
import json, os, sys, time
os.environ.setdefault("VIPS_CONCURRENCY", "1")
import pyvips

pyvips.cache_set_max(0)
directory = sys.argv[1]
originals = [open(os.path.join(directory, f), "rb").read() for f in sorted(os.listdir(directory)) if f.endswith(".jpg")]
WIDTHS = [320, 640, 1080]
ROUNDS = 5

def widths(w):
    made = [x for x in WIDTHS if x < w]
    made.append(min(w, 1080))
    return sorted(set(made))

def same_work(data, suffix):
    image = pyvips.Image.new_from_buffer(data, "", access="sequential").autorot()
    # One decode, three resizes: keep the decoded pixels in memory.
    image = image.copy_memory()
    total = 0
    for w in widths(image.width):
        scaled = image if w == image.width else image.resize(w / image.width, kernel="lanczos3")
        total += len(scaled.write_to_buffer(suffix))
    return total

def thumbnails(data, suffix):
    first = pyvips.Image.new_from_buffer(data, "")
    total = 0
    for w in widths(first.width):
        total += len(pyvips.Image.thumbnail_buffer(data, w).write_to_buffer(suffix))
    return total

FORMATS = {
    "jpeg": ".jpg[Q=80,optimize_coding,interlace,strip]",
    "webp": ".webp[Q=75,strip]",
    # libvips's default AVIF effort (4) and quality (50), through libheif and libaom.
    "avif": ".avif[Q=50,strip]",
}
result = {}
for name, suffix in FORMATS.items():
    for way, run in (("same_work", same_work), ("thumbnail", thumbnails)):
        rounds = []
        size = 0
        for _ in range(ROUNDS):
            started = time.perf_counter()
            size = sum(run(o, suffix) for o in originals)
            rounds.append((time.perf_counter() - started) * 1000 / len(originals))
        rounds.sort()
        result.setdefault(name, {})[way] = {"ms_per_image": rounds[ROUNDS // 2], "bytes_per_image": size // len(originals)}
print(json.dumps(result))
