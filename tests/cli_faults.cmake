# The faults a probe found (issue 21), replayed through the command: each
# ends in a clear message and the documented exit code, or in an input
# skipped and counted, with nothing lost.
# Needs MiniLM, Whisper (scripts/fetch_models.sh) and dataset-fashion-mnist.
include(${CMAKE_CURRENT_LIST_DIR}/script_helpers.cmake)
set(tmp ${CMAKE_CURRENT_BINARY_DIR}/cli_faults)
file(REMOVE_RECURSE ${tmp})
file(MAKE_DIRECTORY ${tmp})
set(image_config "[run]\nsteps = 4\nbatch_size = 16\ncheckpoint_every = 1\nlog_every = 1\n[model]\ntower = \"image\"\nimage_width = 4\n[data]\ntrain = \"/usr/share/datasets/fashion-mnist\"\nlimit = 256\n")
file(WRITE ${tmp}/image.toml "${image_config}")

# A tone of `seconds` as a 16 kHz WAV (the system python, standard library only).
function(write_tone path seconds)
  # (no semicolons: CMake would split the argument at them)
  run(/usr/bin/python3 -c "import math,struct,wave,sys
w=wave.open(sys.argv[1],'wb')
w.setnchannels(1)
w.setsampwidth(2)
w.setframerate(16000)
n=int(16000*float(sys.argv[2]))
w.writeframes(b''.join(struct.pack('<h',int(8000*math.sin(2*math.pi*220*i/16000))) for i in range(n)))
w.close()" ${path} ${seconds})
endfunction()

# ---- 1. A full disk: the write fails as an error naming the file, no .tmp
# is left behind, the previous checkpoint stays whole. Needs a small tmpfs,
# which only root can mount; skipped elsewhere.
expect_exit(0 train ${tmp}/image.toml --set run.out=${tmp}/sized --set run.steps=1)
file(SIZE ${tmp}/sized/checkpoints/step-00000001.pt checkpoint_bytes)
math(EXPR tmpfs_kib "(${checkpoint_bytes} * 3 / 2) / 1024 + 64")
file(MAKE_DIRECTORY ${tmp}/small)
execute_process(COMMAND mount -t tmpfs -o size=${tmpfs_kib}k tmpfs ${tmp}/small RESULT_VARIABLE mounted
                OUTPUT_QUIET ERROR_QUIET)
if(mounted EQUAL 0)
  execute_process(COMMAND ${CWCL} train ${tmp}/image.toml --set run.out=${tmp}/small/run --set run.keep_checkpoints=5
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  file(GLOB leftovers ${tmp}/small/run/checkpoints/*.tmp*)
  file(GLOB kept ${tmp}/small/run/checkpoints/step-*.pt)
  if(kept)
    list(GET kept 0 first_checkpoint)
    execute_process(COMMAND ${CWCL} info --model ${first_checkpoint} RESULT_VARIABLE info_rc OUTPUT_QUIET ERROR_QUIET)
  endif()
  execute_process(COMMAND umount ${tmp}/small)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "step-0000000[0-9].pt: cannot write \\(no space left on device\\)")
    message(FATAL_ERROR "full disk: exit ${rc}, expected 1 naming the checkpoint and the reason:\n${out}\n${err}")
  endif()
  if(err MATCHES "terminate called|Exception raised from")
    message(FATAL_ERROR "full disk: an abort or a backtrace:\n${err}")
  endif()
  if(leftovers)
    message(FATAL_ERROR "full disk: temporary files left: ${leftovers}")
  endif()
  if(NOT kept OR NOT info_rc EQUAL 0)
    message(FATAL_ERROR "full disk: the checkpoint written before the disk filled is gone or unreadable (${kept})")
  endif()
  message(STATUS "full disk: checked on a ${tmpfs_kib} KiB tmpfs")
else()
  message(STATUS "full disk: skipped (mounting a tmpfs needs root)")
endif()

# ---- 2. A clip too short for the tower, among good ones: training skips
# and counts it, evaluation too, zeroshot names the file.
file(WRITE ${tmp}/texts.txt "turn on the lights\nwhat is the weather\nplay some jazz\nset an alarm for seven\nturn the volume down\ntell me a joke\nwhat time is it\nbook a table for two\n")
run(${CWCL} synth ${tmp}/texts.txt -o ${tmp}/speech --voices espeak:en-us,espeak:en)
write_tone(${tmp}/speech/audio/short.wav 0.05)
file(READ ${tmp}/speech/manifest.jsonl manifest)
file(WRITE ${tmp}/speech/train.jsonl "${manifest}{\"id\": \"short\", \"audio\": \"audio/short.wav\", \"text\": \"a short clip\", \"intent\": \"x\"}\n")
file(WRITE ${tmp}/scratch.toml "[run]\nsteps = 2\nbatch_size = 4\n[model]\ntower = \"scratch\"\nscratch_size = \"tiny\"\n[data]\ntrain = \"${tmp}/speech/train.jsonl\"\n")
expect_exit(0 train ${tmp}/scratch.toml --set run.out=${tmp}/short)
expect_match("\"skipped\":1")
expect_exit(0 eval speech --model ${tmp}/short --manifest ${tmp}/speech/train.jsonl --label-field text)
expect_match("\"n\":8,.*\"skipped\":1")
expect_exit(3 zeroshot --model ${tmp}/short --labels "a,b" ${tmp}/speech/audio/short.wav)
expect_match("short.wav: 0.05 s of audio \\(6 feature frames\\), fewer than the 7 frames the tower needs")
expect_no_match("SpeechEncoder")

# ---- 3. One owner per run directory: of two trainings started together on
# one fresh directory, one trains and the other is refused naming the holder.
execute_process(COMMAND /bin/bash -c "\"$0\" train \"$1\" --set run.out=\"$2\" --set run.steps=30 & first=$!
\"$0\" train \"$1\" --set run.out=\"$2\" --set run.steps=30; second=$?; wait $first; echo \"$? $second\""
                        ${CWCL} ${tmp}/image.toml ${tmp}/shared
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCH "([0-9]+) ([0-9]+)\n$" codes "${out}")
set(codes "${CMAKE_MATCH_1};${CMAKE_MATCH_2}")
list(SORT codes)
if(NOT codes STREQUAL "0;2" OR NOT err MATCHES "shared: another cwcl process \\(pid [0-9]+\\) is training in this run directory")
  message(FATAL_ERROR "two trainings on one directory: exits ${codes}, expected 0 and 2:\n${out}\n${err}")
endif()
file(STRINGS ${tmp}/shared/metrics.jsonl lines)
list(LENGTH lines metric_lines)
if(NOT metric_lines EQUAL 30)
  message(FATAL_ERROR "two trainings on one directory: metrics.jsonl has ${metric_lines} lines, not one run's 30")
endif()

# ---- 4. A diverged run is not a success, and learning rates are finite
# numbers a float32 optimizer can use.
expect_exit(1 train ${tmp}/image.toml --set run.out=${tmp}/diverged --set optim.lr=1e30)
expect_match("the run diverged at step [0-9]+")
if(EXISTS ${tmp}/diverged/model.pt)
  message(FATAL_ERROR "a diverged run wrote model.pt")
endif()
file(GLOB diverged_checkpoints ${tmp}/diverged/checkpoints/step-*.pt)
foreach(checkpoint IN LISTS diverged_checkpoints)
  expect_exit(0 info --model ${checkpoint})  # loads: its weights are finite
endforeach()
expect_exit(2 train ${tmp}/image.toml --set run.out=${tmp}/inf --set optim.lr=inf)
expect_match("'optim.lr' must be a finite number")
expect_exit(2 train ${tmp}/image.toml --set run.out=${tmp}/huge --set optim.lr=1e300)
expect_match("config key 'optim.lr'")

# ---- 5. Long audio: windowed at inference, with memory bounded; longer
# than cwcl reads at once, refused naming the file and the limit.
write_tone(${tmp}/long.wav 95)
expect_exit(0 zeroshot --model ${tmp}/short --labels "a,b" ${tmp}/long.wav)
expect_match("long.wav\",\"label\":\"[ab]\"")
run(/usr/bin/python3 -c "import wave,sys
w=wave.open(sys.argv[1],'wb')
w.setnchannels(1)
w.setsampwidth(2)
w.setframerate(8000)
w.writeframes(bytes(2*8000*601))
w.close()" ${tmp}/huge.wav)
expect_exit(3 zeroshot --model ${tmp}/short --labels "a,b" ${tmp}/huge.wav)
expect_match("huge.wav: 601 s of audio, longer than the 600 s cwcl reads at once")

# ---- Smaller ones.
# Classes past the class-name file are a config error.
expect_exit(2 train ${tmp}/image.toml --set run.out=${tmp}/classes --set data.classes=0,12)
expect_match("config key 'data.classes': class 12 outside 0..9")
# A folder the system refuses is internal (1) from train as from export.
expect_exit(1 train ${tmp}/image.toml --set run.out=/proc/cwcl-run)
expect_match("/proc/cwcl-run")
# A runaway value is cut in messages, and its key named.
string(REPEAT "a" 5000 long_name)
file(WRITE ${tmp}/long.toml "${image_config}[text]\ntower = \"${long_name}\"\n")
expect_exit(2 train ${tmp}/long.toml)
expect_match("key 'text.tower': unknown text tower 'a+\\.\\.\\. \\(5000 characters\\)'")
string(REPEAT "${long_name}" 2000 ten_megabytes)
file(WRITE ${tmp}/long_out.toml "[run]\nout = \"${ten_megabytes}\"\n")
expect_exit(2 train ${tmp}/long_out.toml)
expect_match("config key 'run.out': is 10000000 characters, longer than a path can be")
string(LENGTH "${last_out}" message_length)
if(message_length GREATER 5000)
  message(FATAL_ERROR "a 10 MB value made a ${message_length}-character message")
endif()
# A malformed --set is refused before any directory is made.
expect_exit(2 train ${tmp}/image.toml "--set=run.out=\"${tmp}/unterminated")
expect_match("--set run.out: the value is not valid TOML")
if(EXISTS "\"${tmp}")
  message(FATAL_ERROR "a malformed --set made a directory")
endif()
# A moved run directory resumes.
expect_exit(0 train ${tmp}/image.toml --set run.out=${tmp}/before --set run.steps=2)
file(RENAME ${tmp}/before ${tmp}/after)
expect_exit(0 train ${tmp}/image.toml --set run.out=${tmp}/after --resume)
expect_match("\"resumed_at\":2")
# Duplicate ids and empty texts are skipped and counted.
file(WRITE ${tmp}/speech/dups.jsonl "${manifest}")
file(STRINGS ${tmp}/speech/manifest.jsonl first LIMIT_COUNT 1)
file(APPEND ${tmp}/speech/dups.jsonl "${first}\n{\"id\": \"empty\", \"audio\": \"audio/short.wav\", \"text\": \"  \"}\n")
file(WRITE ${tmp}/dups.toml "[run]\nsteps = 1\nbatch_size = 4\n[model]\ntower = \"whisper\"\nhead_hidden = 16\n[data]\ntrain = \"${tmp}/speech/dups.jsonl\"\n")
expect_exit(0 train ${tmp}/dups.toml --set run.out=${tmp}/dups)
expect_match("duplicate id")
expect_match("empty text")
expect_match("\"skipped\":2")
# A byte changed inside a model file is a data error naming it: one in the
# middle of the largest record (a tensor).
run(/usr/bin/python3 -c "import struct,sys,zipfile
data=bytearray(open(sys.argv[1],'rb').read())
info=max(zipfile.ZipFile(sys.argv[1]).infolist(),key=lambda i:i.file_size)
at=info.header_offset
start=at+30+struct.unpack('<H',data[at+26:at+28])[0]+struct.unpack('<H',data[at+28:at+30])[0]
data[start+info.file_size//2]^=1
open(sys.argv[2],'wb').write(data)" ${tmp}/after/model.pt ${tmp}/flipped.pt)
expect_exit(3 zeroshot --model ${tmp}/flipped.pt --labels "a,b" ${tmp}/speech/audio/1.wav)
expect_match("flipped.pt: entry '[^']+' fails its checksum: the file was changed or corrupted")
expect_no_match("Exception raised from|frame #")
