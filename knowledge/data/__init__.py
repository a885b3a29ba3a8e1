"""Bundled finance vocabulary: lexicon, abbreviations, typos, stopwords, jieba dictionary."""
