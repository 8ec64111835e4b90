"""Decoding options: expected-code-vector (mean) decoding."""

import torch

from igpg.generator import ParameterGenerator
from igpg.generator.conditions import sample_profile, support_set
from igpg.generator.rows import row_layout
from igpg.generator.sample import SamplingConfig, sample_codes
from igpg.data import Task, load_dataset
from igpg.text import embed_texts
from igpg.tokenizer.tokenizer import Codes


def _request(arch="mlp:64-16-3", classes=(3, 5, 8)):
    task = Task.from_classes("digits", list(classes))
    x, _ = support_set(task, 5, seed=0)
    prof = sample_profile(x, load_dataset("digits").input_shape).view(task.num_labels, 5, -1)
    return task, arch, prof, embed_texts(["Classify handwritten digits 3, 5 and 8"])


def test_mean_decoding_of_no_level_equals_index_decoding(tiny_pipeline):
    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen", tokenizer=d / "tok")
    task, arch, prof, instr = _request()
    books = gen.tokenizer.codebooks()
    q = gen.cfg.codes.codes_per_chunk
    assert books.shape[:2] == (q, gen.cfg.codes.vocab)
    dec = sample_codes(gen.model, [task], arch, [prof], instr, SamplingConfig(temperature=0))
    codes, side = dec.codes, dec.side
    assert dec.latents is None and dec.logits is None
    dec2 = sample_codes(gen.model, [task], arch, [prof], instr, SamplingConfig(mean_from=q), codebooks=books,
                        return_logits=True)  # latents and the logits trace together
    codes2, side2, lat = dec2.codes, dec2.side, dec2.latents
    assert len(dec2.logits) == len(row_layout(arch, gen.cfg.codes.chunk_size, q))  # no level averaged: the picked codes' vectors
    assert torch.equal(codes, codes2) and torch.equal(side, side2)
    a = gen.tokenizer.decode(Codes(arch, codes[0], side[0]))
    b = gen.tokenizer.decode_latents(lat[0], arch, side[0])
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    # averaging the last level changes the weights but not the codes the decoder was conditioned on
    dec3 = sample_codes(gen.model, [task], arch, [prof], instr, SamplingConfig(mean_from=q - 1), codebooks=books)
    codes3, lat3 = dec3.codes, dec3.latents
    assert torch.equal(codes, codes3) and not torch.allclose(lat, lat3)
    net = gen.generate("Classify handwritten digits 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch=arch,
                       mean_from=q - 1)
    assert net(torch.randn(2, 64)).shape == (2, 3)
