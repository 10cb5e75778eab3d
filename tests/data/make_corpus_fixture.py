"""Writes the small synthetic fixture corpus under tests/data/corpus/ (run once; output committed).

Three domains with distinct vocabularies, so tests can see domain labels survive the pipeline:
  corpus/tree/cooking/*.txt, corpus/tree/weather/*.txt, corpus/tree/code/*.py
  corpus/jsonl/mixed.jsonl (+ .gz, .zst made with the gzip/zstd tools)
"""
import json
import random
from pathlib import Path

root = Path(__file__).parent / "corpus"
rng = random.Random(20261125)

ingredients = ["flour", "butter", "sugar", "onions", "garlic", "lentils", "rice", "basil", "lemon", "yeast",
               "tomatoes", "carrots", "honey", "pepper", "salt", "cream", "eggs", "oats", "beans", "thyme"]
actions = ["Chop", "Whisk", "Simmer", "Roast", "Knead", "Stir", "Fold", "Season", "Bake", "Rinse"]
places = ["the harbour", "the northern hills", "the valley", "the coast", "the plateau", "the old town", "the lakes"]
weather = ["light rain", "heavy showers", "bright sunshine", "patchy fog", "strong winds", "scattered clouds",
           "thunderstorms", "drizzle", "frost", "a gentle breeze"]
days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
names = ["total", "count", "items", "value", "result", "buffer", "offset", "weights", "scores", "index"]


def recipe(i):
    lines = [f"Recipe {i}: {rng.choice(ingredients).title()} and {rng.choice(ingredients)} bake", ""]
    for step in range(rng.randint(6, 12)):
        a, b = rng.sample(ingredients, 2)
        lines.append(f"{step + 1}. {rng.choice(actions)} the {a} with {rng.randint(1, 500)} g of {b} "
                     f"for {rng.randint(2, 45)} minutes, then set aside.")
    lines.append("")
    lines.append(f"Serves {rng.randint(2, 8)}. Keeps for {rng.randint(1, 5)} days in a cool place.")
    return "\n".join(lines) + "\n"


def forecast(i):
    lines = [f"Forecast {i}", ""]
    for day in rng.sample(days, rng.randint(4, 7)):
        lines.append(f"{day}: {rng.choice(weather)} over {rng.choice(places)}, highs of {rng.randint(-5, 31)} C, "
                     f"winds {rng.randint(5, 60)} km/h from the {rng.choice(['north', 'south', 'east', 'west'])}.")
    lines.append("")
    lines.append(f"Outlook: {rng.choice(weather)} later in the week; pressure {rng.randint(980, 1040)} hPa.")
    return "\n".join(lines) + "\n"


def code(i):
    a, b, c = rng.sample(names, 3)
    lines = [f"def step_{i}({a}, {b}):", f'    """Combine {a} and {b} (fixture {i})."""', f"    {c} = []"]
    for k in range(rng.randint(4, 9)):
        lines.append(f"    for k in range({rng.randint(2, 64)}):")
        lines.append(f"        {c}.append({a}[k] * {rng.randint(2, 9)} + {b}[k] // {rng.randint(2, 9)})")
    lines.append(f"    return sum({c}) - {rng.randint(0, 99)}")
    return "\n".join(lines) + "\n"


for domain, make, ext in [("cooking", recipe, "txt"), ("weather", forecast, "txt"), ("code", code, "py")]:
    d = root / "tree" / domain
    d.mkdir(parents=True, exist_ok=True)
    for i in range(24):
        (d / f"{domain}_{i:02d}.{ext}").write_text(make(i), encoding="utf-8")

(root / "jsonl").mkdir(parents=True, exist_ok=True)
with open(root / "jsonl" / "mixed.jsonl", "w", encoding="utf-8") as f:
    for i in range(12):
        f.write(json.dumps({"text": recipe(100 + i), "domain": "cooking"}) + "\n")
        f.write(json.dumps({"text": forecast(100 + i)}) + "\n")  # no domain: the file's default
    f.write(json.dumps({"text": "Caf\u00e9 cr\u00e8me, na\u00efve \u2014 \u00fcber \u65e5\u672c \U0001F600\n", "domain": "unicode"}) + "\n")
