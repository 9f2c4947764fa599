#!/usr/bin/env python3
"""Write datasets/fixtures/spamassassin-mini/: 48 short mails made up for the tests, in the
SpamAssassin layout (data/<group>/<nnnnn>.txt), and print the corpus digest for
datasets/checksums.sha256 (key spamassassin-mini/corpus.sha256sum).

No real mail is copied: subjects and bodies are drawn from two small word lists with a fixed
seed. Mails cover CRLF line ends, a folded Subject header, a Latin-1 byte (not UTF-8), a mail
without a body and one without a Subject. Standard library only; deterministic.
"""
import hashlib
import os
import random
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "spamassassin-mini", "data")
HAM = ("meeting tomorrow patch build release thanks review code list linux kernel bug "
       "fix branch merge test report agenda lunch notes draft").split()
SPAM = ("free money offer click now winner cash prize cheap deal limited guaranteed "
        "credit loan pills discount order bonus urgent unsubscribe").split()
COMMON = "the a to and of you for is on this we please".split()
GROUPS = [("easy-ham-1", 12, HAM), ("easy-ham-2", 8, HAM), ("hard-ham-1", 4, HAM),
          ("spam-1", 12, SPAM), ("spam-2", 12, SPAM)]


def words(rng, pool, n):
    return " ".join(rng.choice(pool if rng.random() < 0.6 else COMMON) for _ in range(n))


def main():
    rng = random.Random(20261206)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    k = 0
    for group, count, pool in GROUPS:
        os.makedirs(os.path.join(OUT, group))
        for j in range(count):
            k += 1
            subject = words(rng, pool, rng.randint(2, 5))
            body = "\n".join(words(rng, pool, rng.randint(4, 10)) for _ in range(rng.randint(1, 4)))
            head = f"From: sender{k}@example.org\nTo: list@example.org\nSubject: {subject}\n"
            if j == 1:  # folded Subject header
                head = head.replace(f"Subject: {subject}\n", f"Subject: {subject}\n\t{words(rng, pool, 2)}\n")
            if j == 2:  # no Subject
                head = f"From: sender{k}@example.org\n"
            mail = (head + "\n" + body + "\n").encode()
            if j == 3:  # CRLF line ends
                mail = mail.replace(b"\n", b"\r\n")
            if j == 4:  # a Latin-1 byte: not UTF-8
                mail = mail.replace(b"\n\n", b"\n\ncaf\xe9 ", 1)
            if j == 5:  # headers only
                mail = head.encode()
            with open(os.path.join(OUT, group, f"{k:05d}.txt"), "wb") as f:
                f.write(mail)
    listing = []
    for group, _, _ in GROUPS:
        for name in sorted(os.listdir(os.path.join(OUT, group))):
            with open(os.path.join(OUT, group, name), "rb") as f:
                listing.append(f"{hashlib.sha256(f.read()).hexdigest()}  ./{group}/{name}\n")
    print(hashlib.sha256("".join(sorted(listing, key=lambda l: l.split("  ", 1)[1].encode())).encode()).hexdigest())


if __name__ == "__main__":
    main()
