"""The five special tokens every glassformer tokenizer reserves, at the same fixed ids."""

PAD = "<pad>"
START = "<start>"
END = "<end>"
UNK = "<unk>"
MASK = "<mask>"

PAD_ID = 0
START_ID = 1
END_ID = 2
UNK_ID = 3
MASK_ID = 4

# Position in this list is the token's id in word, char and our own subword vocabularies.
SPECIALS = [PAD, START, END, UNK, MASK]

# The names of the roles a special token can play, in id order; a foreign tokenizer maps
# each role to one of its own tokens (see SubwordTokenizer).
ROLES = ("pad", "start", "end", "unk", "mask")
