// Host cost of one sampling draw (SequenceSampler.Draw) over a GPT-2-sized vocabulary (50,257 tokens): the work the
// decode scheduler does for each row at each step after the forward pass (rows run in parallel on the intra-op
// threads). Logits are N(0, 4²), a peaked but high-entropy row. Prints milliseconds per draw, twice (the first round
// includes compilation).
// Usage, from the repository root after ./bioforge has built artifacts/cli:   dotnet fsi bench/sampler.fsx
// Another build: copy its artifacts/cli aside and point the #r line below at that folder's BioForge.dll.
#r "../artifacts/cli/BioForge.dll"
open BioForge.Generation

let random = System.Random 1
let vocabulary = 50_257
let logits = Array.init vocabulary (fun _ -> float32 (4.0 * sqrt (-2.0 * log (random.NextDouble())) * cos (2.0 * System.Math.PI * random.NextDouble())))
let rows = 512

let time (name: string) (options: SamplingOptions) =
    let clock = System.Diagnostics.Stopwatch.StartNew()
    for row in 0 .. rows - 1 do
        SequenceSampler.Draw(System.ReadOnlySpan<float32> logits, options, 1UL, int64 row, 0L) |> ignore
    printfn "%-22s %6.2f ms per draw" name (clock.Elapsed.TotalMilliseconds / float rows)

for _ in 1 .. 2 do
    time "temperature 1" (SamplingOptions())
    time "top_k 950" (SamplingOptions(TopK = 950))
    time "top_p 0.95" (SamplingOptions(TopP = 0.95))
    time "top_k 950, rep. 1.2" (SamplingOptions(TopK = 950, RepetitionPenalty = 1.2))
