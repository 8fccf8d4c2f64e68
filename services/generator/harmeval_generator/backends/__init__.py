"""Serving engines behind one interface (`base.Engine`): llama.cpp in process, vLLM in
process, Hugging Face TGI and any OpenAI-compatible server over HTTP.

Each backend is one module here that registers itself with
`registry.register_backend(name, config=...)`; `registry.backends()` imports every module of
this package, so a new backend is a new module and nothing else lists it."""
