"""Writes the task fixtures (tests/data/tasks) in the Hugging Face layout that lm-eval-harness's
task definitions read, one record per document, to OUT_DIR/<task>.jsonl.

The fixtures mix each dataset's layouts (original release and Hugging Face export) to exercise
dirmoe's readers; the harness reads only the Hugging Face one. Both dirmoe-eval and the harness
then read the converted files, so each document has the same doc_id (its line) on both sides.

usage: tasks_to_hf_layout.py FIXTURE_DIR OUT_DIR"""
import json
import os
import sys


def labelled(record, stem_key):
    """ARC/OpenBookQA: (stem, {text: [...], label: [...]}) from either layout."""
    if isinstance(record.get("question"), dict):
        q = record["question"]
        return q["stem"], {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]}
    return record[stem_key], record["choices"]


def convert(task, records):
    if task in ("arc_easy", "arc_challenge"):
        for r in records:
            stem, choices = labelled(r, "question")
            yield {"id": r.get("id", ""), "question": stem, "choices": choices, "answerKey": r["answerKey"]}
    elif task == "openbookqa":
        for r in records:
            stem, choices = labelled(r, "question_stem")
            yield {"id": r.get("id", ""), "question_stem": stem, "choices": choices, "answerKey": r["answerKey"]}
    elif task == "boolq":
        for i, r in enumerate(records):
            label = r["label"] if "label" in r else int(bool(r["answer"]))
            yield {"question": r["question"], "passage": r["passage"], "idx": i, "label": int(label)}
    elif task == "hellaswag":
        for r in records:
            yield {"ind": r.get("ind", 0), "activity_label": r["activity_label"], "ctx_a": r["ctx_a"],
                   "ctx_b": r["ctx_b"], "ctx": r.get("ctx", ""), "endings": r["endings"], "label": str(r["label"])}
    elif task == "piqa":
        for r in records:
            yield {"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "label": int(r["label"])}
    elif task == "race":
        # EleutherAI/race: {article, problems: repr(list of {answer, options, question})}
        articles, order = {}, []
        for r in records:
            if "problems" in r:
                problems = r["problems"] if isinstance(r["problems"], list) else None
                yield {"article": r["article"], "problems": repr(problems) if problems is not None else r["problems"]}
            elif "questions" in r:
                problems = [{"answer": a, "options": o, "question": q}
                            for q, o, a in zip(r["questions"], r["options"], r["answers"])]
                yield {"article": r["article"], "problems": repr(problems)}
            else:
                if r["article"] not in articles:
                    articles[r["article"]] = []
                    order.append(r["article"])
                articles[r["article"]].append({"answer": r["answer"], "options": r["options"], "question": r["question"]})
        for article in order:
            yield {"article": article, "problems": repr(articles[article])}
    else:  # lambada_openai, winogrande, sciq: the fixtures are in the Hugging Face layout already
        yield from records


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if not name.endswith(".jsonl"):
            continue
        task = name[: -len(".jsonl")]
        with open(os.path.join(src, name), encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            for r in convert(task, records):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


main()
