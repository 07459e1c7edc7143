# tests/lib/CfrSummary.pm: prove's console output (TAP::Formatter::Console)
# followed by the line CI reads, "N passed, M failed" (after "K skipped" if
# any). tests/run loads it with `prove --formatter CfrSummary`.
#
# Counted as tests/run always counted: each passing test point (a cmocka
# case, a Python case, a lab script, a build, lint, a valgrind binary, a fuzz
# target), each failing one, and a test that broke without a failing point
# (a crash, a sanitizer report at exit, a timeout, a short plan) as one
# failure. Skipped points and scripts that skipped whole are counted apart.
# With nothing run at all, it says so and counts that as a failure. The
# counts also go to the file $CFR_TEST_COUNTS ("PASSED FAILED"), which
# tests/run reads for its exit status.
package CfrSummary;

use strict;
use warnings;
use base 'TAP::Formatter::Console';

# Under prove -j (TEST_JOBS), each test's line is printed whole when it
# ends, so the lines of tests running at once never interleave, and no
# progress ruler fills a CI log (with -v, prove's own output).
sub open_test {
	my ( $self, $test, $parser ) = @_;
	return $self->SUPER::open_test( $test, $parser ) if $self->jobs < 2 || $self->verbose;
	return CfrSummary::Session->new(
		{ name => $test, formatter => $self, parser => $parser, show_count => 0 } );
}

sub summary {
	my ( $self, $aggregate, $interrupted ) = @_;
	$self->SUPER::summary( $aggregate, $interrupted );

	my ( $passed, $failed, $skipped ) = ( 0, 0, 0 );
	for my $name ( $aggregate->descriptions ) {
		for my $parser ( $aggregate->parsers($name) ) {
			my $np = $parser->passed - $parser->skipped;
			my $nf = $parser->failed;
			$nf = 1 if !$nf && $parser->has_problems;
			$passed  += $np;
			$failed  += $nf;
			$skipped += $parser->skipped + ( $parser->skip_all ? 1 : 0 );
		}
	}
	if ( $passed + $failed + $skipped == 0 ) {
		print "FAIL: no tests found\n";
		$failed = 1;
	}
	if ( my $file = $ENV{CFR_TEST_COUNTS} ) {
		open( my $fh, '>', $file ) or die "$file: $!";
		print $fh "$passed $failed\n";
		close($fh);
	}
	print "$skipped skipped\n" if $skipped;
	print "$passed passed, $failed failed\n";
}

package CfrSummary::Session;

use strict;
use warnings;
use base 'TAP::Formatter::Console::Session';

sub header { }

sub result { }

sub close_test {
	my $self = shift;
	$self->SUPER::header();
	$self->SUPER::close_test(@_);
}

1;
