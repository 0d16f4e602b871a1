/**
 * CLIP's BPE tokenizer for the text encoder, through @huggingface/tokenizers (the tokenizer of
 * transformers.js: it reads a Hugging Face tokenizer.json, with no dependencies). SD exports
 * often ship only the slow tokenizer's vocab.json + merges.txt; for those, the tokenizer.json
 * that Hugging Face's CLIPTokenizerFast writes for the same files is built here (the pipeline
 * of openai/clip-vit-large-patch14's tokenizer.json: NFC, whitespace runs → one space,
 * lowercase; CLIP's split regex; byte-level characters; BPE with the "</w>" end-of-word suffix;
 * <|startoftext|> … <|endoftext|> around the ids).
 *
 * Ids are then cut or padded to model_max_length (77) with the pad token the files name:
 * <|endoftext|> for SD 1.x, "!" (id 0) for SD 2.x. Truncation keeps <|endoftext|> last, as
 * CLIPTokenizer(truncation=True) does.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { UserError } from "../../errors.js";
import type { TokenizerFiles } from "./modelDir.js";

const START = "<|startoftext|>";
const END = "<|endoftext|>";
/** CLIP's pre-tokenization regex (openai/CLIP simple_tokenizer.py, as HF writes it). */
const CLIP_SPLIT =
  "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

export interface ClipTokenizer {
  /** Exactly `length` ids: start, the prompt's tokens, end, then padding. */
  encode(text: string): number[];
  readonly length: number;
  readonly padId: number;
}

export function loadClipTokenizer(files: TokenizerFiles, where: string): ClipTokenizer {
  const json = files.tokenizerJson ?? clipTokenizerJson(files, where);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, files.config);
  } catch (error) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${where}: the tokenizer could not be built (${(error as Error).message}).`,
      { cause: error },
    );
  }
  const idOf = (token: string, what: string): number => {
    const id = tokenizer.token_to_id(token);
    if (id === undefined) {
      throw new UserError(
        "MODEL_DIR_INVALID",
        `${where}: the ${what} ${token} is not in the vocabulary.`,
      );
    }
    return id;
  };
  const endId = idOf(END, "end token");
  const padToken =
    tokenText(files.config.pad_token) ?? tokenText(files.specialTokens.pad_token) ?? END;
  const padId = idOf(padToken, "pad token");
  const length = Number(files.config.model_max_length ?? 77);
  // Some configs say 1e30 ("no limit"); the text encoder's positions are 77.
  const maxLength = Number.isInteger(length) && length >= 2 && length <= 1024 ? length : 77;
  return {
    length: maxLength,
    padId,
    encode(text: string): number[] {
      const ids = tokenizer.encode(text).ids.map(Number);
      if (ids.length > maxLength) {
        ids.length = maxLength;
        ids[maxLength - 1] = endId;
      }
      while (ids.length < maxLength) ids.push(padId);
      return ids;
    },
  };
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (
    value &&
    typeof value === "object" &&
    typeof (value as { content?: unknown }).content === "string"
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** The tokenizer.json CLIPTokenizerFast builds from vocab.json and merges.txt. */
export function clipTokenizerJson(files: TokenizerFiles, where: string): object {
  const { vocab, merges } = files;
  if (!vocab || !merges) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${where}: no tokenizer.json and no vocab.json + merges.txt.`,
    );
  }
  const added = [START, END].map((content) => {
    const id = vocab[content];
    if (id === undefined) {
      throw new UserError("MODEL_DIR_INVALID", `${where}: vocab.json has no ${content}.`);
    }
    return {
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    };
  });
  const unk = tokenText(files.config.unk_token) ?? tokenText(files.specialTokens.unk_token) ?? END;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFC" },
        { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
        { type: "Lowercase" },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: CLIP_SPLIT }, behavior: "Removed", invert: true },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: [END, vocab[END]],
      cls: [START, vocab[START]],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}
