# cwcl train, info --model, zeroshot and eval end to end on tiny runs, and
# their errors for bad input (DESIGN.md contracts 4 and 7).
# Needs MiniLM, Whisper (scripts/fetch_models.sh) and dataset-fashion-mnist.
include(${CMAKE_CURRENT_LIST_DIR}/script_helpers.cmake)

set(tmp ${CMAKE_CURRENT_BINARY_DIR}/cli_train)
file(REMOVE_RECURSE ${tmp})
file(MAKE_DIRECTORY ${tmp})

# Configuration errors name the key and exit 2.
file(WRITE ${tmp}/typo.toml "[loss]\ntemprature = 0.1\n")
expect_exit(2 train ${tmp}/typo.toml)
expect_match("typo.toml: unknown key 'loss.temprature'")
# No class_names or templates: the bundled ones are found from any directory.
file(WRITE ${tmp}/image.toml "[run]\nsteps = 4\nbatch_size = 16\ncheckpoint_every = 2\n[model]\ntower = \"image\"\nimage_width = 4\n[data]\ntrain = \"/usr/share/datasets/fashion-mnist\"\nlimit = 256\n")
expect_exit(2 train ${tmp}/image.toml --set run.out=${tmp}/img --set loss.weights=gaussian)
expect_match("'loss.weights'")
expect_exit(2 train ${tmp}/image.toml --set run.out=${tmp}/img --set run.stepz=3)
expect_match("unknown key 'run.stepz'")
expect_exit(2 train ${tmp}/image.toml --set run.out=${tmp}/img --set model.whisper_training=top)
expect_match("'model.whisper_training' belongs to model.tower = \"whisper\"")
# Data errors name the file and exit 3.
expect_exit(3 train ${tmp}/image.toml --set run.out=${tmp}/nodata --set data.train=${tmp}/no-such-folder)
expect_match("no-such-folder")

# An image run, then zero-shot on image files (a PGM here; PNG/JPEG alike).
expect_exit(0 train ${tmp}/image.toml --set run.out=${tmp}/img)
expect_match("\"steps\":4")
expect_exit(0 info --model ${tmp}/img)
expect_match("\"weights_digest\":\"[0-9a-f]+\"")
file(WRITE ${tmp}/item.pgm "P2\n4 4\n255\n0 255 255 0\n0 255 255 0\n0 255 255 0\n0 255 255 0\n")
expect_exit(0 zeroshot --model ${tmp}/img --labels "trouser,bag,sandal" ${tmp}/item.pgm)
expect_match("{\"input\":\"[^\"]*item.pgm\",\"label\":\"(trouser|bag|sandal)\",\"scores\":{")
expect_exit(3 zeroshot --model ${tmp}/img --labels "trouser,bag" ${tmp}/missing.png ${tmp}/item.pgm)
expect_match("missing.png")
expect_match("item.pgm")
expect_exit(2 zeroshot --model ${tmp}/img --labels "trouser,trouser" ${tmp}/item.pgm)
expect_match("duplicate label 'trouser'")
file(WRITE ${tmp}/labels.txt "bag\n\ncoat\n")
expect_exit(3 zeroshot --model ${tmp}/img --labels ${tmp}/labels.txt ${tmp}/item.pgm)
expect_match("labels.txt:2: empty label")
file(WRITE ${tmp}/junk.pt "not a model")
expect_exit(3 zeroshot --model ${tmp}/junk.pt --labels "a,b" ${tmp}/item.pgm)
expect_match("junk.pt: not a cwcl model")
expect_exit(0 eval image --model ${tmp}/img --classes 7,8,9 -k 5 --details)
expect_match("\"confusion\":")

# A Whisper speech run on a few synthesised utterances, then zero-shot on
# audio at other sample rates (48 kHz WAV, 16 kHz FLAC).
file(WRITE ${tmp}/texts.txt "turn on the lights\nwhat is the weather\nplay some jazz\nset an alarm for seven\nturn the volume down\ntell me a joke\nwhat time is it\nbook a table for two\n")
expect_exit(0 synth ${tmp}/texts.txt -o ${tmp}/speech --format flac --voices espeak:en-us,espeak:en)
file(WRITE ${tmp}/bad_line.jsonl "")
file(STRINGS ${tmp}/speech/manifest.jsonl lines)
file(WRITE ${tmp}/speech/train.jsonl "")
foreach(line IN LISTS lines)
  file(APPEND ${tmp}/speech/train.jsonl "${line}\n")
endforeach()
file(APPEND ${tmp}/speech/train.jsonl "{\"id\": \"no-audio\", \"text\": \"a line without audio\"}\n{\"id\": \"gone\", \"audio\": \"audio/missing.wav\", \"text\": \"missing file\"}\n")
file(WRITE ${tmp}/speech.toml "[run]\nsteps = 3\nbatch_size = 4\n[model]\ntower = \"whisper\"\nhead_hidden = 16\n[data]\ntrain = \"${tmp}/speech/train.jsonl\"\n")
# Written to a log (not a terminal), progress comes as lines: every step
# with CWCL_PROGRESS_SECONDS=0 (the default, 60 s, gives the first and last).
set(ENV{CWCL_PROGRESS_SECONDS} soon)
expect_exit(2 train ${tmp}/speech.toml --set run.out=${tmp}/sp)
expect_match("CWCL_PROGRESS_SECONDS='soon': expected seconds")
set(ENV{CWCL_PROGRESS_SECONDS} 0)
expect_exit(0 train ${tmp}/speech.toml --set run.out=${tmp}/sp)
expect_match("\"skipped\":2")
expect_match("step 1/3  loss [0-9.]+ .*step 2/3  loss .*step 3/3  loss .* ETA 0m00s")
unset(ENV{CWCL_PROGRESS_SECONDS})
expect_exit(0 zeroshot --model ${tmp}/sp --labels "lights,weather" /usr/share/sounds/alsa/Front_Center.wav ${tmp}/speech/audio/1.flac)
expect_match("Front_Center.wav\",\"label\":\"(lights|weather)\"")
expect_match("1.flac\",\"label\":\"(lights|weather)\"")
# Augmented copies in the feature cache: each epoch reads one version of
# each clip, drawn per clip (8 clips, batch 4, 4 steps: both versions are
# read), through the pooled cache of the frozen encoder and through the
# loader of a fine-tuned one.
expect_exit(0 train ${tmp}/speech.toml --set run.out=${tmp}/sp-copies --set data.audio_copies=1 --set run.steps=4)
expect_match("and 1 augmented copies of each")
if(NOT EXISTS ${tmp}/speech/train.jsonl.whisper.copies1.trimmed.features.safetensors)
  message(FATAL_ERROR "data.audio_copies = 1 wrote no train.jsonl.whisper.copies1.trimmed.features.safetensors")
endif()
expect_exit(0 train ${tmp}/speech.toml --set run.out=${tmp}/sp-copies-top --set data.audio_copies=1 --set run.steps=4
            --set model.whisper_training=top --set model.top_blocks=1)
expect_exit(3 train ${tmp}/speech.toml --set run.out=${tmp}/sp-copies-bad --set data.audio_copies=2
            --set data.features=${tmp}/speech/train.jsonl.whisper.copies1.trimmed.features.safetensors)
expect_match("copies1.trimmed.features.safetensors: holds augmented copies .* but data.audio_copies = 2")
# Clips lose their silence by default; a cache of trimmed clips is never
# read as untrimmed ones (the message names the file and the key).
if(NOT EXISTS ${tmp}/speech/train.jsonl.whisper.trimmed.features.safetensors)
  message(FATAL_ERROR "training wrote no train.jsonl.whisper.trimmed.features.safetensors")
endif()
expect_exit(3 train ${tmp}/speech.toml --set run.out=${tmp}/sp-untrimmed-bad --set data.trim_silence=false
            --set data.features=${tmp}/speech/train.jsonl.whisper.trimmed.features.safetensors)
expect_match("trimmed.features.safetensors: holds clips trimmed .* but data.trim_silence = false")
expect_exit(0 zeroshot --model ${tmp}/sp --keep-silence --labels "lights,weather" ${tmp}/speech/audio/1.flac)
expect_match("1.flac\",\"label\":\"(lights|weather)\"")
expect_exit(2 train ${tmp}/speech.toml --set run.out=${tmp}/sp-copies-neg --set data.audio_copies=-1)
expect_match("data.audio_copies")
# Speed alone (no room, no noise): its own cache beside the default one.
expect_exit(0 train ${tmp}/speech.toml --set run.out=${tmp}/sp-copies-speed --set data.audio_copies=1 --set run.steps=2
            --set data.copy_augment.reverb_probability=0 --set data.copy_augment.noise_probability=0)
file(GLOB speed_caches ${tmp}/speech/train.jsonl.whisper.copies1-*.trimmed.features.safetensors)
list(LENGTH speed_caches speed_cache_count)
if(NOT speed_cache_count EQUAL 1)
  message(FATAL_ERROR "speed-only copies wrote ${speed_cache_count} caches of their own: ${speed_caches}")
endif()
expect_exit(2 train ${tmp}/speech.toml --set run.out=${tmp}/sp-copies-range --set data.audio_copies=1
            --set data.copy_augment.min_speed=1.3)
expect_match("data.copy_augment.max_speed")
# eval speech with a second model: the paired difference and its interval.
# Each text is its own class here (label field "text", no label file).
expect_exit(0 train ${tmp}/speech.toml --set run.out=${tmp}/sp-cl --set loss.kind=cl)
expect_exit(0 eval speech --model ${tmp}/sp --manifest ${tmp}/speech/manifest.jsonl --label-field text
            --against ${tmp}/sp-cl)
expect_match("\"difference\":-?[0-9.e-]+,\"difference_ci\":\\[-?[0-9.e-]+,-?[0-9.e-]+\\]")
expect_match("\"against\":{\"model\":\"[^\"]*sp-cl\"")
expect_exit(0 eval speech --model ${tmp}/sp --manifest ${tmp}/speech/manifest.jsonl --label-field text)
expect_match("\"top1_ci\":\\[")
# The tower in bf16 (autocast) for both models; a precision it does not know is a usage error.
expect_exit(0 eval speech --model ${tmp}/sp --manifest ${tmp}/speech/manifest.jsonl --label-field text
            --precision bf16 --against ${tmp}/sp-cl)
expect_match("\"top1\":[0-9.e-]+")
expect_exit(2 eval speech --model ${tmp}/sp --manifest ${tmp}/speech/manifest.jsonl --label-field text --precision fp16)
expect_match("--precision")
# Top-1 per voice (the synth manifest's voice field), on the whole set's classes.
expect_exit(0 eval speech --model ${tmp}/sp --manifest ${tmp}/speech/manifest.jsonl --label-field text --group-by voice)
expect_match("\"groups\":{\"espeak:en\":{\"n\":[0-9]+,\"top1\":[0-9.e-]+},\"espeak:en-us\":{\"n\":[0-9]+,\"top1\":[0-9.e-]+}}")
expect_exit(2 eval speech --model ${tmp}/sp --manifest ${tmp}/speech/manifest.jsonl --label-field text
            --against ${tmp}/img)
expect_match("an image model")

# Export: the trained towers in the interchange format, rebuilt in PyTorch by
# scripts/cwcl_tower.py and checked against cwcl's embeddings (1e-4).
file(WRITE ${tmp}/scratch.toml "[run]\nsteps = 2\nbatch_size = 4\n[model]\ntower = \"scratch\"\nscratch_size = \"tiny\"\npooling = \"attention\"\n[data]\ntrain = \"${tmp}/speech/train.jsonl\"\n")
expect_exit(0 train ${tmp}/scratch.toml --set run.out=${tmp}/scratch)
# The colour tower on an image manifest of PPM files (OpenCV reads them as it
# reads PNG and JPEG): red and blue squares of several sizes.
file(WRITE ${tmp}/colours/train.jsonl "")
foreach(i RANGE 7)
  math(EXPR side "2 + ${i} % 3")
  math(EXPR red "${i} % 2")
  if(red)
    set(pixel "255 0 0")
    set(name "red")
  else()
    set(pixel "0 0 255")
    set(name "blue")
  endif()
  math(EXPR count "${side} * ${side}")
  string(REPEAT "${pixel}\n" ${count} body)
  file(WRITE ${tmp}/colours/${i}.ppm "P3\n${side} ${side}\n255\n${body}")
  file(APPEND ${tmp}/colours/train.jsonl
       "{\"id\": \"${i}\", \"image\": \"${i}.ppm\", \"texts\": [\"a ${name} square\", \"${name}\"], \"label\": \"${name}\"}\n")
endforeach()
file(WRITE ${tmp}/resnet.toml "[run]\nsteps = 2\nbatch_size = 4\n[model]\ntower = \"resnet\"\nresnet_width = 4\nimage_size = 16\n[data]\ntrain = \"${tmp}/colours/train.jsonl\"\n")
expect_exit(0 train ${tmp}/resnet.toml --set run.out=${tmp}/resnet)
expect_exit(0 eval image --model ${tmp}/resnet --manifest ${tmp}/colours/train.jsonl --task colours)
expect_match("\"task\":\"colours\"")
expect_exit(0 zeroshot --model ${tmp}/resnet --labels "red,blue" ${tmp}/colours/3.ppm)
expect_match("\"label\":\"(red|blue)\"")
expect_exit(2 eval image --model ${tmp}/resnet)
expect_match("--manifest")
foreach(run img sp scratch resnet)
  expect_exit(0 export ${tmp}/${run} -o ${tmp}/export-${run})
  expect_match("\"tensors\":[0-9]+")
  foreach(f model.safetensors config.json check.safetensors)
    if(NOT EXISTS ${tmp}/export-${run}/${f})
      message(FATAL_ERROR "cwcl export ${run} wrote no ${f}")
    endif()
  endforeach()
  # The system python3 with python3-torch (scripts/setup.sh installs it).
  run(/usr/bin/python3 ${SOURCE_DIR}/../scripts/cwcl_tower.py ${tmp}/export-${run} --check)
endforeach()
expect_exit(3 export ${tmp}/junk.pt -o ${tmp}/export-junk)
expect_match("junk.pt: not a cwcl model")
expect_exit(1 export ${tmp}/img -o /proc/cwcl-export)  # a folder the system refuses: internal, as every write
expect_match("/proc/cwcl-export: cannot create the export folder")
