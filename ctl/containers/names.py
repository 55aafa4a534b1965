"""Random container names in docker's adjective_noun style."""

from __future__ import annotations

import os

_ADJECTIVES = (
    "admiring",
    "bold",
    "brave",
    "calm",
    "clever",
    "cool",
    "eager",
    "elegant",
    "epic",
    "festive",
    "gallant",
    "gentle",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "magical",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
)
_NOUNS = (
    "archimedes",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "gauss",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "maxwell",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yonath",
)


def random_name() -> str:
    """random_name picks a name; the store retries on the rare collision."""
    pick = int.from_bytes(os.urandom(4))
    return f"{_ADJECTIVES[pick % len(_ADJECTIVES)]}_{_NOUNS[(pick >> 16) % len(_NOUNS)]}"
