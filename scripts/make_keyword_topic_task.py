"""Writes the `keyword_topic` mini twin (fixtures/tasks/keyword_topic.jsonl + train/), seeded and reproducible.

Why this task: the positive known-answer control of the collapse claim needs a text-sufficient task whose label
is carried by a closed set of spoken keywords, so that a text concept naming those few words covers *all* of the
task's information (rank ≪ hidden size). Each sentence is a topic-neutral carrier with exactly one keyword from
a closed list of eight (two per topic); delete the keyword and nothing about the topic is left.

Run: python scripts/make_keyword_topic_task.py   (rewrites the files; same seed → same bytes)
"""
import json
import random
from pathlib import Path

KEYWORDS = {      # one-token words for the backbone's tokenizer, two per topic of the topic twin: 8 in all, within
    "world": ["election", "embassy"],          # the text concept's width/64 = 9 words at the backbone's 576
    "sports": ["football", "tennis"],
    "business": ["profits", "investors"],
    "sci-tech": ["software", "satellite"],
}
PEOPLE = ["My uncle", "The taxi driver", "Our neighbor", "My old teacher", "The barber", "Her roommate",
          "The new intern", "My grandfather", "A man on the bus", "The waitress", "His cousin", "The librarian"]
CARRIERS = [
    "{p} kept talking about the {k} all evening.",
    "{p} wrote a long letter about the {k} last week.",
    "{p} asked me what I think about the {k}.",
    "{p} could not stop reading about the {k} this morning.",
    "{p} made a short video about the {k} yesterday.",
    "Everyone at the cafe was arguing about the {k} today.",
    "The radio host spent an hour on the {k} tonight.",
    "{p} told a funny story about the {k} at dinner.",
]


def sentences(n: int, rng: random.Random, taken: set) -> list[dict]:
    labels, out = list(KEYWORDS), []
    while len(out) < n:
        label = labels[len(out) % len(labels)]
        text = rng.choice(CARRIERS).format(p=rng.choice(PEOPLE), k=rng.choice(KEYWORDS[label]))
        if text not in taken:
            taken.add(text)
            out.append({"text": text, "label": label})
    return out


def main(seed: int = 7, n_eval: int = 160, n_train: int = 160) -> None:
    root = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"
    rng, taken = random.Random(seed), set()
    for path, n, prefix in ((root / "keyword_topic.jsonl", n_eval, "keyword_topic"),
                            (root / "train" / "keyword_topic.jsonl", n_train, "keyword_topic-train")):
        rows = sentences(n, rng, taken)
        path.write_text("".join(json.dumps({"id": f"{prefix}-{i + 1:04d}", **r}) + "\n" for i, r in enumerate(rows)))


if __name__ == "__main__":
    main()
