import os  # added for the tests
import trio_socketserver.sync as socketserver
import time

class TimerRequestHandler(socketserver.BaseRequestHandler):
    def setup(self):
        self.start_time = time.time()

    def handle(self):
        # Do something with the socket connection...
        pass

    def finish(self):
        duration = time.time() - self.start_time
        print(f"Connection handled in {duration} seconds.")

server = socketserver.TCPServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "8080"))), TimerRequestHandler)  # port from the environment
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
